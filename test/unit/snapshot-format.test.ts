import { describe, expect, it } from 'vitest';
import type { ContainerRecord } from '../../src/model/records.ts';
import { fromSnapshot, toSnapshot } from '../../src/depot/snapshot-format.ts';

function record(): ContainerRecord {
  return {
    id: 'abcdefghijk', handle: 'h1', state: 'active', path: '/depot/abcdefghijk', network: '10.254.0.4',
    host_ip: '10.254.0.5', container_ip: '10.254.0.6', uid: 10001, ports: [61001], grace_time: 300,
    bind_mounts: [{ src_path: '/a', dst_path: '/b', mode: 1 }], rootfs: '/r', rootfs_requested: true, events: ['out of memory'],
    net_in: [{ host_port: 61001, container_port: 8080 }],
    net_out: [
      { network: '10.0.0.0/8', protocol: 0, port: 80, port_range: '1000:2000' },
      { protocol: 2, icmp_type: -1, icmp_code: 3, log: true },
    ],
    limits: { memory_limit_in_bytes: 1 << 26, cpu_limit_in_shares: 512, bandwidth: { rate: 100, burst: 10 }, disk: { byte_limit: 1 << 20 } },
    jobs: [
      { id: 3, state: 'running', privileged: true, discard_output: false, log_tag: 'x', pid: 77, pid_start_time: 123 },
      { id: 4, state: 'exited', exit_status: 2, privileged: false, discard_output: true },
    ],
    created_at: 1, backend: { initPid: 42 },
  };
}

describe("snapshot.json in the original's shape", () => {
  it('writes the original fields and shapes', () => {
    const s = toSnapshot(record());
    expect(s).toMatchObject({
      state: 'active', grace_time: 300, events: ['out of memory'],
      jobs: {
        '3': { discard_output: false, log_tag: 'x' },
        '4': { discard_output: true, log_tag: null, status: [2, '', ''] },
      },
      resources: {
        handle: 'h1', container_id: 'abcdefghijk', network: '10.254.0.4', uid: 10001, ports: [61001],
        net_in: [[61001, 8080]],
        net_out: [['10.0.0.0/8', '1000:2000', 'tcp', null, null, null], [null, null, 'icmp', null, 3, true]],
        limit_memory: 1 << 26, limit_cpu: 512,
      },
    });
    expect(s.jobs['3']).not.toHaveProperty('status');
  });

  it('reads back what it wrote, the path being where the folder is', () => {
    const r = record();
    const back = fromSnapshot(JSON.parse(JSON.stringify(toSnapshot(r))), '/depot/moved');
    expect(back).toEqual({ ...r, path: '/depot/moved' });
  });

  it("reads the previous build's shape (the record itself)", () => {
    const r = record();
    expect(fromSnapshot(JSON.parse(JSON.stringify(r)), r.path)).toEqual(r);
  });

  it('reads a snapshot as the original wrote it', () => {
    const original = {
      events: [], grace_time: 30, limits: {}, state: 'stopped',
      jobs: { '7': { iomux_spawn_pid: 9, discard_output: false, log_tag: null, status: [0, '', ''] }, '8': { discard_output: false, log_tag: 'app' } },
      resources: {
        handle: 'h', container_id: '17ccrjtp4dm', network: '10.254.0.8', uid: 10002, ports: [61002],
        net_in: [[61002, 61002]], net_out: [['1.2.3.0/32', '8765', 'tcp', null, null, null], [null, '1:5', 'udp', null, null, true]],
        limit_memory: 1024,
      },
    };
    const r = fromSnapshot(original, '/d/17ccrjtp4dm')!;
    expect(r).toMatchObject({
      id: '17ccrjtp4dm', handle: 'h', state: 'stopped', path: '/d/17ccrjtp4dm', network: '10.254.0.8',
      host_ip: '10.254.0.9', container_ip: '10.254.0.10', uid: 10002, ports: [61002], grace_time: 30,
      net_in: [{ host_port: 61002, container_port: 61002 }],
      net_out: [{ network: '1.2.3.0/32', port: 8765, protocol: 0 }, { port_range: '1:5', protocol: 1, log: true }],
      limits: { memory_limit_in_bytes: 1024 },
      jobs: [
        { id: 7, state: 'exited', exit_status: 0, discard_output: false, privileged: false },
        { id: 8, state: 'running', log_tag: 'app', discard_output: false, privileged: false },
      ],
    });
  });

  it('refuses what is neither shape', () => {
    expect(fromSnapshot(undefined, '/x')).toBeUndefined();
    expect(fromSnapshot({ state: 'active' }, '/x')).toBeUndefined();
    expect(fromSnapshot({ state: 'weird', resources: { container_id: 'a', network: '1.2.3.4' } }, '/x')).toBeUndefined();
  });
});
