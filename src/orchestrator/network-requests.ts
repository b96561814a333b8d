// NetIn and NetOut: a host port forwarded to the container, and an outbound
// rule. The port comes from the pool (or is the one asked for); the rule is
// validated once (src/model/net-out.ts) before the backend applies it.
import { WardenError } from '../model/errors.ts';
import { validateNetOut } from '../model/net-out.ts';
import type * as M from '../protocol/types.ts';
import type { Core, RequestContext } from './core.ts';
import { takePort } from './pool-answers.ts';

export async function netIn(core: Core, req: M.NetInRequest, ctx: RequestContext): Promise<M.NetInResponse> {
  const { pools, backend } = core;
  const c = core.lookup(req.handle, ctx);
  c.assertState('active');
  const pooled = !req.host_port || pools.port.contains(req.host_port);
  const hostPort = !req.host_port ? takePort(pools, core.log) : pooled ? pools.port.acquireSpecific(req.host_port) : req.host_port;
  // The insecure backend forwards nothing: like the original, it ignores container_port.
  const containerPort = backend.name === 'insecure' ? hostPort : req.container_port || hostPort;
  if (containerPort > 65535 || hostPort > 65535) {
    if (pooled) pools.port.release(hostPort);
    throw new WardenError('ports must be at most 65535');
  }
  try {
    await c.lock.run(async () => {
      c.assertState('active');
      await backend.netIn(c.record, hostPort, containerPort);
      if (pooled) c.record.ports.push(hostPort);
      c.record.net_in.push({ host_port: hostPort, container_port: containerPort });
      await core.snapshots.write(c);
    });
  } catch (err) {
    if (pooled && !c.record.ports.includes(hostPort)) pools.port.release(hostPort);
    throw err;
  }
  return { host_port: hostPort, container_port: containerPort };
}

export async function netOut(core: Core, req: M.NetOutRequest, ctx: RequestContext): Promise<M.NetOutResponse> {
  const c = core.lookup(req.handle, ctx);
  c.assertState('active');
  const rule = validateNetOut(req);
  await c.lock.run(async () => {
    c.assertState('active');
    await core.backend.netOut(c.record, rule);
    c.record.net_out.push(rule);
    await core.snapshots.write(c);
  });
  return {};
}
