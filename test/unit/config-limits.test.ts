// The keys for neighbours' limits: container defaults (memory, disk), the depot
// reserve, the running-jobs cap, and the frame budget and idle timeout.
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/config.ts';
import { autoReserve, containersShare } from '../../src/backends/linux/disk/containers-qgroup.ts';
import { applyDefaultLimits } from '../../src/backends/linux/linux-backend.ts';
import { hostSettings } from '../../src/backends/linux/settings.ts';
import type { ContainerRecord } from '../../src/model/records.ts';

const RANGE = { localPortRange: [32768, 60999] as const };
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const server = (yaml: string) => parseConfig(`server:\n${yaml}`, undefined, RANGE).server;

function errorOf(yaml: string): ConfigError {
  try {
    server(yaml);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('no error');
}

describe('limit keys', () => {
  it('have documented defaults', () => {
    expect(server('')).toMatchObject({
      container_memory_limit: 1 * GiB,
      container_disk_limit: 10 * GiB,
      container_depot_reserve: null,
      container_max_jobs: 100,
      max_buffered_bytes: 64 * MiB,
      frame_idle_timeout: 30,
    });
  });

  it('take values and ~ (no limit, derived reserve, no timeout)', () => {
    expect(server('  container_memory_limit: ~\n  container_disk_limit: ~\n  frame_idle_timeout: ~\n')).toMatchObject({
      container_memory_limit: null, container_disk_limit: null, frame_idle_timeout: null,
    });
    expect(server('  container_memory_limit: 67108864\n  container_disk_limit: 1048576\n  container_depot_reserve: 0\n  container_max_jobs: 3\n  frame_idle_timeout: 0.5\n'))
      .toMatchObject({ container_memory_limit: 64 * MiB, container_disk_limit: MiB, container_depot_reserve: 0, container_max_jobs: 3, frame_idle_timeout: 0.5 });
  });

  it('refuse bad values, naming the key', () => {
    expect(errorOf('  container_memory_limit: 1000\n').key).toBe('server.container_memory_limit');
    expect(errorOf('  container_disk_limit: "big"\n').key).toBe('server.container_disk_limit');
    expect(errorOf('  container_depot_reserve: -1\n').key).toBe('server.container_depot_reserve');
    expect(errorOf('  container_max_jobs: 0\n').key).toBe('server.container_max_jobs');
    expect(errorOf('  frame_idle_timeout: 0\n').key).toBe('server.frame_idle_timeout');
  });

  it('max_buffered_bytes must hold one frame of max_frame_bytes, and defaults to at least two', () => {
    const e = errorOf('  max_frame_bytes: 1048576\n  max_buffered_bytes: 1048576\n');
    expect(e.key).toBe('server.max_buffered_bytes');
    expect(e.message).toMatch(/more than server.max_frame_bytes/);
    expect(server('  max_frame_bytes: 67108864\n').max_buffered_bytes).toBe(128 * MiB);
  });
});

describe('the depot reserve', () => {
  it('is derived from the depot: 5%, at least 256 MiB, at most half', () => {
    expect(autoReserve(100 * GiB)).toBe(5 * GiB);
    expect(autoReserve(1 * GiB)).toBe(256 * MiB);
    expect(autoReserve(300 * MiB)).toBe(150 * MiB);
  });

  it('leaves containers the rest, and refuses one that leaves nothing', () => {
    expect(containersShare(1 * GiB, null)).toBe(768 * MiB);
    expect(containersShare(1 * GiB, 0)).toBe(1 * GiB);
    expect(() => containersShare(1 * GiB, 1 * GiB)).toThrow(/server.container_depot_reserve .* leaves nothing/);
  });
});

describe('default limits of a new Linux container', () => {
  const record = (limits: ContainerRecord['limits']) => ({ limits }) as ContainerRecord;
  const settings = hostSettings(parseConfig('server:\n  container_memory_limit: 67108864\n  container_disk_limit: 1048576\n', undefined, RANGE));

  it('fill in what the container was not given', () => {
    const c = record({});
    applyDefaultLimits(c, settings);
    expect(c.limits.memory_limit_in_bytes).toBe(64 * MiB);
    expect(c.limits.disk?.byte_limit).toBe(MiB);
  });

  it('never replace a limit already set', () => {
    const c = record({ memory_limit_in_bytes: 5 * GiB, disk: { byte_limit: 7 * GiB } });
    applyDefaultLimits(c, settings);
    expect(c.limits).toEqual({ memory_limit_in_bytes: 5 * GiB, disk: { byte_limit: 7 * GiB } });
  });

  it('are left out when configured ~, and disk when quotas are off', () => {
    const none = hostSettings(parseConfig('server:\n  container_memory_limit: ~\n  quota:\n    disk_quota_enabled: false\n', undefined, RANGE));
    const c = record({});
    applyDefaultLimits(c, none);
    expect(c.limits).toEqual({});
  });
});
