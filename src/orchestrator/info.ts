// Info: what the daemon knows of a container (state, events, addresses, jobs)
// with what the backend reads from the host (memory, cpu, disk, network).
import type { Container } from '../model/container.ts';
import { describeError } from '../model/errors.ts';
import type * as M from '../protocol/types.ts';
import type { Core, RequestContext } from './core.ts';

/** One entry of bulkInfo(), shaped like Garden's BulkInfo entries. */
export interface BulkInfoEntry {
  info?: M.InfoResponse;
  error?: string;
}

/** Containers whose Info bulkInfo() reads at once. */
const BULK_INFO_CONCURRENCY = 16;

/** The daemon's own part of Info, without asking the host. */
export function baseInfo(c: Container): M.InfoResponse {
  return {
    state: c.state,
    events: [...c.record.events],
    host_ip: c.record.host_ip,
    container_ip: c.record.container_ip,
    container_path: c.record.path,
    job_ids: c.runningJobIds(),
  };
}

/** Full Info; a destroyed container answers what it was just before its destroy. */
export async function containerInfo(core: Core, c: Container): Promise<M.InfoResponse> {
  if (c.state === 'destroyed') return c.obituary ?? baseInfo(c);
  const extra = await hostFigures(core, c);
  return { ...baseInfo(c), ...extra };
}

/**
 * The backend's figures (memory, cpu, disk, bandwidth). Infos of one container
 * that come while a read is under way share it: they are at most one read old,
 * which no client can tell from network delay, and a burst of Links on one
 * container then reads its cgroup files once, not once each.
 */
function hostFigures(core: Core, c: Container): Promise<M.InfoResponse> {
  if (c.hostFiguresReading) return c.hostFiguresReading;
  const reading = core.backend.info(c.record).finally(() => {
    if (c.hostFiguresReading === reading) c.hostFiguresReading = undefined;
  });
  c.hostFiguresReading = reading;
  return reading;
}

export async function infoRequest(core: Core, req: M.InfoRequest, ctx: RequestContext): Promise<M.InfoResponse> {
  const c = core.lookup(req.handle, ctx);
  c.assertState('active', 'stopped');
  return containerInfo(core, c);
}

/**
 * Info of many containers (default: all) for dashboards (GET /containers). It
 * references none of them, so polling never holds off a grace time.
 */
export async function bulkInfo(core: Core, handles: string[] = core.registry.handles()): Promise<Record<string, BulkInfoEntry>> {
  // A Map, then fromEntries: handles are the client's strings ("__proto__" too).
  const out = new Map<string, BulkInfoEntry>();
  const queue = [...new Set(handles)];
  for (const h of queue) out.set(h, {});
  const one = async (handle: string): Promise<BulkInfoEntry> => {
    const c = core.registry.find(handle);
    if (!c) return { error: 'unknown handle' };
    try {
      return { info: c.state === 'active' || c.state === 'stopped' ? await containerInfo(core, c) : baseInfo(c) };
    } catch (err) {
      return { error: describeError(err) };
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(BULK_INFO_CONCURRENCY, queue.length) }, async () => {
      for (let h = queue.shift(); h !== undefined; h = queue.shift()) out.set(h, await one(h));
    }),
  );
  return Object.fromEntries(out);
}
