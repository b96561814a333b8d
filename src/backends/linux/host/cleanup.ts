// `warden-server --cleanup --config FILE`: removes everything of one config from the
// host, like Garden's `gdn cleanup`: its containers (only with --destroy-containers),
// cgroup parents, runc root, pool iptables rules (tagged or written by older builds),
// the depot's loop mount and the daemon record. The depot image file stays (it is the
// config's storage; remove it by hand if the config is gone for good).
import type { WardenConfig } from '../../../config/types.ts';
import { hostSettings } from '../settings.ts';
import { listContainers } from '../runtime/runc.ts';
import { sweepHost } from '../container/sweep.ts';
import { teardownHost } from './setup.ts';
import { depotContainers, liveDaemon, tagOf } from './daemon-records.ts';

export interface CleanupOptions {
  /** The confirmation: also destroy the config's containers and their jobs. */
  destroyContainers: boolean;
}

/** Returns what was done, as lines for the operator; throws (nothing done) when refused. */
export async function cleanupConfig(config: WardenConfig, opts: CleanupOptions): Promise<string[]> {
  if (config.server.container_klass !== 'Warden::Container::Linux') {
    throw new Error(`--cleanup is for the Linux backend; the insecure backend keeps nothing on the host but its depot ${config.server.container_depot_path}`);
  }
  const s = hostSettings(config);
  const tag = tagOf(s);
  const pid = await liveDaemon(tag);
  if (pid !== undefined) throw new Error(`a daemon (pid ${pid}) serves this config (depot ${s.depot}): stop it first`);
  const ids = new Set([
    ...(await depotContainers(s.depot)),
    ...(await listContainers({ binary: s.runtime, root: s.runtimeRoot }).catch(() => [] as string[])),
  ]);
  if (ids.size > 0 && !opts.destroyContainers) {
    throw new Error(
      `${ids.size} container(s) of this config still exist (depot ${s.depot}): ` +
        'pass --destroy-containers to destroy them and their jobs too',
    );
  }
  const done: string[] = [];
  await sweepHost(s, { claimed: new Set() });
  if (ids.size > 0) done.push(`destroyed ${ids.size} container(s): ${[...ids].sort().join(' ')}`);
  // The operator's last word on this config: the shared base chains go too when nothing else uses them.
  await teardownHost(s, { removeUnusedBase: true });
  done.push(
    `removed pool rules of ${s.network.poolNetwork} (and the base chains if nothing else used them), cgroup parents ${s.cgroupParent}, runtime root ${s.runtimeRoot}, ` +
      `daemon record ${tag}; unmounted the depot ${s.depot} if an image was mounted there (kept ${s.depotImage})`,
  );
  return done;
}
