// Request type → service method. Every request type of the protocol is here.
import type { RequestMap, RequestName, ResponseMap } from '../protocol/types.ts';
import type { RequestContext, WardenService } from '../orchestrator/warden-service.ts';

type Handler<K extends RequestName> = (
  s: WardenService,
  req: RequestMap[K],
  ctx: RequestContext,
) => ResponseMap[K] | Promise<ResponseMap[K]>;

export const handlers: { [K in RequestName]: Handler<K> } = {
  Ping: (s) => s.ping(),
  Echo: (s, r) => s.echo(r),
  List: (s) => s.list(),
  Create: (s, r, c) => s.create(r, c),
  Stop: (s, r, c) => s.stop(r, c),
  Destroy: (s, r, c) => s.destroy(r, c),
  Info: (s, r, c) => s.infoRequest(r, c),
  Spawn: (s, r, c) => s.spawn(r, c),
  Link: (s, r, c) => s.link(r, c),
  Run: (s, r, c) => s.run(r, c),
  Stream: (s, r, c) => s.stream(r, c),
  NetIn: (s, r, c) => s.netIn(r, c),
  NetOut: (s, r, c) => s.netOut(r, c),
  CopyIn: (s, r, c) => s.copyIn(r, c),
  CopyOut: (s, r, c) => s.copyOut(r, c),
  LimitMemory: (s, r, c) => s.limitMemory(r, c),
  LimitDisk: (s, r, c) => s.limitDisk(r, c),
  LimitBandwidth: (s, r, c) => s.limitBandwidth(r, c),
  LimitCpu: (s, r, c) => s.limitCpu(r, c),
};

/** Requests that wait on a job: a draining daemon closes their connections at once. */
export const WAITING_REQUESTS: ReadonlySet<RequestName> = new Set(['Link', 'Stream', 'Run']);
