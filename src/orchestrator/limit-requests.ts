// The Limit* requests. Each sets the limit when the request gives one and
// answers the limit in force either way (read from the host, as the original
// did); a set limit is recorded in the snapshot. The insecure backend limits
// nothing and answers the original's "not implemented".
import type { Container } from '../model/container.ts';
import { NotImplementedError, WardenError, describeError } from '../model/errors.ts';
import { safeNumber } from '../protocol/u64.ts';
import type * as M from '../protocol/types.ts';
import { DISK_LIMIT_FIELDS } from '../protocol/types.ts';
import type { Core, RequestContext } from './core.ts';

/** The container a Limit* request names, in a state limits apply to. */
function limitable(core: Core, handle: string, ctx: RequestContext): Container {
  const c = core.lookup(handle, ctx);
  c.assertState('active', 'stopped');
  if (core.backend.name === 'insecure') throw new NotImplementedError();
  return c;
}

/**
 * Memory and cpu: read when no value is given; else set under the container's
 * lock (a failure in the original's words, `Failed setting <what>: <why>`),
 * record and snapshot. Answers the value in force.
 */
async function readOrSet(
  core: Core,
  c: Container,
  value: M.U64 | undefined | null,
  apply: (value: M.U64 | undefined) => Promise<M.U64>,
  what: string,
  record: (asked: M.U64, now: M.U64) => void,
): Promise<M.U64> {
  if (value === undefined || value === null) return apply(undefined);
  return c.lock.run(async () => {
    let now: M.U64;
    try {
      now = await apply(value);
    } catch (err) {
      throw new WardenError(`Failed setting ${what}: ${describeError(err)}`);
    }
    record(value, now);
    await core.snapshots.write(c);
    return now;
  });
}

/** 0 sets too, as in the original; unlimited reads 9223372036854771712. */
export async function limitMemory(core: Core, req: M.LimitMemoryRequest, ctx: RequestContext): Promise<M.LimitMemoryResponse> {
  const c = limitable(core, req.handle, ctx);
  const now = await readOrSet(core, c, req.limit_in_bytes, (v) => core.backend.limitMemory(c.record, v), 'memory limit', (asked) => {
    c.record.limits.memory_limit_in_bytes = asked;
  });
  return { limit_in_bytes: now };
}

/** cpu.shares as the kernel keeps it (1 reads back as 2). */
export async function limitCpu(core: Core, req: M.LimitCpuRequest, ctx: RequestContext): Promise<M.LimitCpuResponse> {
  const c = limitable(core, req.handle, ctx);
  const now = await readOrSet(core, c, req.limit_in_shares, (v) => core.backend.limitCpu(c.record, v), 'cpu shares', (_, kept) => {
    c.record.limits.cpu_limit_in_shares = kept;
  });
  return { limit_in_shares: now };
}

export async function limitBandwidth(core: Core, req: M.LimitBandwidthRequest, ctx: RequestContext): Promise<M.LimitBandwidthResponse> {
  const c = limitable(core, req.handle, ctx);
  // tc takes rates and bursts far below 2^53; larger ones cannot be applied.
  const rate = safeNumber(req.rate);
  const burst = safeNumber(req.burst);
  if (rate === undefined || burst === undefined) throw new WardenError(`rate ${req.rate} or burst ${req.burst} is too large`);
  await c.lock.run(async () => {
    await core.backend.limitBandwidth(c.record, rate, burst);
    c.record.limits.bandwidth = { rate, burst };
    await core.snapshots.write(c);
  });
  return { rate: req.rate, burst: req.burst };
}

/** Applies the limits given, if any, and answers the limits in force (every alias), as the original did. */
export async function limitDisk(core: Core, req: M.LimitDiskRequest, ctx: RequestContext): Promise<M.LimitDiskResponse> {
  const c = limitable(core, req.handle, ctx);
  const asked: M.DiskLimits = {};
  for (const f of DISK_LIMIT_FIELDS) if (Object.hasOwn(req, f) && req[f] !== undefined) asked[f] = req[f];
  if (Object.keys(asked).length === 0) return core.backend.limitDisk(c.record, asked);
  return c.lock.run(async () => {
    c.record.limits.disk = await core.backend.limitDisk(c.record, asked);
    await core.snapshots.write(c);
    return { ...c.record.limits.disk };
  });
}
