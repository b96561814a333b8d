// A container's life: Create (reserve, prepare the folder, have the backend
// build it, snapshot), Stop, and Destroy (snapshot removed first, processes
// killed, host state released, resources given back). On any failure nothing
// is left half made: a failed create is undone, a failed destroy stays listed.
import { join } from 'node:path';
import { Container } from '../model/container.ts';
import { HandleExistsError, WardenError, codeOf, describeError } from '../model/errors.ts';
import { checkPathText } from '../model/request-paths.ts';
import { newContainerRecord } from '../model/records.ts';
import { validateHandle } from '../model/registry.ts';
import { toSnapshot } from '../depot/snapshot-format.ts';
import type * as M from '../protocol/types.ts';
import type { Core, RequestContext } from './core.ts';
import { baseInfo, containerInfo } from './info.ts';
import { maxContainersError } from './pool-answers.ts';
import { releaseRecorded, reserveForCreate } from './resources.ts';
import { settledWithin } from '../model/settled-within.ts';

export async function create(core: Core, req: M.CreateRequest, ctx: RequestContext): Promise<M.CreateResponse> {
  const { config, registry, pools, log } = core;
  if (core.createsHeld) await core.createsHeld;
  // Reserve everything synchronously, before the first await.
  const max = config.server.max_containers;
  if (registry.size >= max) {
    core.observer.createRefused?.('max_containers');
    throw maxContainersError(pools, max, req.network);
  }
  const handleGiven = Object.hasOwn(req, 'handle') && req.handle !== undefined && req.handle !== null;
  if (handleGiven) {
    validateHandle(req.handle!);
    if (registry.has(req.handle!)) throw new HandleExistsError(req.handle!);
  }
  checkPathText('rootfs', req.rootfs);
  for (const m of req.bind_mounts ?? []) {
    checkPathText('bind mount src_path', m.src_path);
    checkPathText('bind mount dst_path', m.dst_path);
    if (!m.src_path.startsWith('/') || !m.dst_path.startsWith('/')) {
      throw new WardenError(`bind mount paths must be absolute: ${m.src_path} -> ${m.dst_path}`);
    }
  }
  const id = registry.newId();
  const { subnet, uid } = reserveForCreate(pools, req.network, log);
  const record = newContainerRecord({
    id,
    handle: Object.hasOwn(req, 'handle') ? req.handle! : id,
    state: 'born',
    path: join(config.server.container_depot_path, id),
    network: subnet.network,
    host_ip: subnet.hostIp,
    container_ip: subnet.containerIp,
    uid,
    grace_time: Object.hasOwn(req, 'grace_time') ? req.grace_time! : config.server.container_grace_time,
    bind_mounts: (req.bind_mounts ?? []).map((m) => ({ src_path: m.src_path, dst_path: m.dst_path, mode: m.mode })),
    rootfs: req.rootfs || config.server.container_rootfs_path,
    rootfs_requested: !!req.rootfs,
    created_at: Date.now(),
  });
  const c = new Container(record);
  registry.add(c);
  core.grace.reference(c, ctx.connectionId);
  ctx.references.add(c);
  // Under the container's lock: a Destroy that arrives meanwhile (the handle
  // is listed from the start) waits for the create or its undo to finish,
  // instead of removing the folder the create then writes into again.
  await c.lock.run(async () => {
    let refused: WardenError | undefined;
    try {
      refused = await prepareFolder(core, c, req);
      if (refused) throw refused;
      await core.backend.create(record);
      c.state = 'active';
      await core.snapshots.write(c);
    } catch (err) {
      await undoCreate(core, c);
      // The original's own messages (rootfs, bind mount source) go out as they are.
      throw err === refused ? err : new WardenError('cannot create container', { cause: err });
    }
  });
  if (c.references.size === 0) core.grace.arm(c);
  log.info({ handle: record.handle, id }, 'container created');
  return { handle: record.handle };
}

/**
 * One trip to a worker: the original's checks of Create's paths (rootfs a
 * folder, bind mount sources present), then the folder and its born snapshot.
 * A missing path is answered with the original's message, and nothing is made.
 */
async function prepareFolder(core: Core, c: Container, req: M.CreateRequest): Promise<WardenError | undefined> {
  const sources = (req.bind_mounts ?? []).map((m) => m.src_path);
  const kinds = await core.pool.run('state.prepareContainer', {
    path: c.record.path,
    snapshot: toSnapshot(c.record),
    check: { rootfs: req.rootfs || undefined, sources },
  });
  if (kinds.rootfs !== undefined && kinds.rootfs !== 'directory') return new WardenError(`rootfs ${req.rootfs} not found`, { code: 'not_found' });
  const missing = sources.find((_, i) => kinds.sources[i] === 'missing');
  if (missing !== undefined) return new WardenError(`Source path for bind mount does not exist: ${missing}`, { code: 'not_found' });
  return undefined;
}

async function undoCreate(core: Core, c: Container): Promise<void> {
  try {
    await core.backend.destroy(c.record);
    await core.pool.run('state.removeTree', { path: c.record.path });
  } catch (err) {
    // Leave the folder and its born snapshot for the next start's recovery to finish.
    core.log.error({ id: c.id, err: describeError(err) }, 'undoing a failed create failed');
  }
  releaseRecorded(core.pools, c.record);
  core.registry.remove(c);
  c.state = 'destroyed';
}

export async function stop(core: Core, req: M.StopRequest, ctx: RequestContext): Promise<M.StopResponse> {
  const c = core.lookup(req.handle, ctx);
  c.assertState('active', 'stopped');
  const work = c.lock.run(async () => {
    if (c.state === 'destroyed') return;
    c.state = 'stopped';
    await core.snapshots.write(c);
    await core.backend.stop(c.record, !!req.kill);
  });
  if (req.background) {
    work.catch((err) => core.log.error({ handle: c.handle, err: describeError(err) }, 'background stop failed'));
  } else {
    await work;
  }
  return {};
}

/** Stop and release everything; on failure the container stays listed with the error in its events. */
/** How long a Destroy waits for reads of its killed jobs' output. */
const READS_GRACE_MS = 2000;

export async function destroyContainer(core: Core, c: Container): Promise<void> {
  if (c.state === 'destroyed') return;
  // A daemon that dies from here on finishes this destroy at its next start: recovery
  // destroys a container without a snapshot. A cut Destroy never leaves one half
  // done (its jobs killed, its files half removed) and listed as if whole.
  if (!c.destroying) {
    c.destroying = true;
    await core.snapshots.settled(c);
    await core.pool.run('state.removeTree', { path: c.snapshotPath });
  }
  // Kill first, outside the lock: a graceful Stop holding the lock (waiting out
  // its TERM timeout) then ends at once instead of delaying the destroy.
  if (c.state === 'active' || c.state === 'stopped') {
    await core.backend.stop(c.record, true).catch(() => {});
  }
  // Links and Streams of the jobs just killed see their exit and read the output
  // before the folder goes (a slow client does not hold the destroy for long).
  if (c.reads.size > 0) await settledWithin([...c.reads], READS_GRACE_MS);
  await c.lock.run(async () => {
    if (c.state === 'destroyed') return;
    core.grace.cancel(c);
    c.obituary = await containerInfo(core, c).catch(() => baseInfo(c));
    try {
      await core.backend.destroy(c.record);
      await core.pool.run('state.removeTree', { path: c.record.path });
    } catch (err) {
      const message = `destroy failed: ${describeError(err)}`;
      core.observer.destroyFailed?.(c.handle);
      c.record.events.push(message);
      // Still listed: it needs its snapshot again (a Destroy may be retried).
      c.destroying = false;
      await core.snapshots.write(c).catch(() => {});
      throw new WardenError(message, { code: codeOf(err) });
    }
    releaseRecorded(core.pools, c.record);
    core.registry.remove(c);
    c.state = 'destroyed';
    c.obituary.state = 'destroyed';
    core.log.info({ handle: c.handle, id: c.id }, 'container destroyed');
  });
}
