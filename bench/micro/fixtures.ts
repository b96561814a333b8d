// Realistic inputs for the micro benchmarks: the messages a DEA sends and
// receives most, and a container record as a busy app container has it.
import type { ContainerRecord, JobRecord } from '../../src/model/records.ts';
import { NetOutProtocol, type SpawnRequest, type StreamResponse } from '../../src/protocol/types.ts';

export const HANDLE = '16q1f2vgmrr';

export const ECHO_MESSAGE = 'x'.repeat(1024);

/** What the DEA spawns to start an app instance: rlimits from its config, a log tag. */
export const SPAWN_REQUEST: SpawnRequest = {
  handle: HANDLE,
  script: 'cd /home/vcap/app && exec ./startup -p 61001 >>/home/vcap/logs/stdout.log 2>>/home/vcap/logs/stderr.log',
  privileged: false,
  discard_output: false,
  log_tag: 'app-6c4f1d2e',
  rlimits: {
    as: 4 * 1024 ** 3,
    core: 0,
    cpu: 3600,
    fsize: 1024 ** 3,
    nofile: 16384,
    nproc: 512,
    stack: 8 * 1024 ** 2,
  },
};

/** One chunk of job output as Stream sends it: 64 KiB of stdout. */
export const STREAM_RESPONSE: StreamResponse = {
  name: 'stdout',
  data: Buffer.alloc(64 * 1024, 'log line 0123456789 abcdefghijklmnopqrstuvwxyz\n'),
};

function job(id: number): JobRecord {
  const exited = id <= 7;
  return {
    id,
    state: exited ? 'exited' : 'running',
    ...(exited ? { exit_status: id === 3 ? 1 : 0 } : {}),
    privileged: id === 1,
    discard_output: id === 2,
    ...(id >= 8 ? { log_tag: `app-6c4f1d2e-${id}` } : {}),
    pid: 40000 + id * 17,
    pid_start_time: 123456789 + id * 1000,
  };
}

/** A container record with 10 jobs, net rules, limits and bind mounts, as snapshot.json holds it. */
export function containerRecord(): ContainerRecord {
  const path = `/var/vcap/data/warden/depot/${HANDLE}`;
  return {
    id: HANDLE,
    handle: HANDLE,
    state: 'active',
    path,
    network: '10.254.0.8',
    host_ip: '10.254.0.9',
    container_ip: '10.254.0.10',
    uid: 10002,
    ports: [61001, 61002],
    grace_time: 300,
    bind_mounts: [
      { src_path: '/var/vcap/data/dea_next/buildpack_cache', dst_path: '/tmp/buildpack_cache', mode: 0 },
      { src_path: '/var/vcap/data/dea_next/staging/6c4f1d2e', dst_path: '/tmp/staged', mode: 1 },
    ],
    rootfs: '/var/vcap/packages/rootfs_cflinuxfs2/rootfs',
    events: ['out of memory'],
    net_in: [
      { host_port: 61001, container_port: 8080 },
      { host_port: 61002, container_port: 2222 },
    ],
    net_out: [
      { network: '10.0.0.0-10.255.255.255', protocol: NetOutProtocol.TCP, port_range: '1-65535' },
      { network: '0.0.0.0/0', protocol: NetOutProtocol.UDP, port: 53 },
      { network: '0.0.0.0/0', protocol: NetOutProtocol.TCP, port: 443, log: true },
      { network: '0.0.0.0/0', protocol: NetOutProtocol.ICMP, icmp_type: 8, icmp_code: 0 },
      { network: '192.168.50.4', protocol: NetOutProtocol.ALL },
    ],
    limits: {
      memory_limit_in_bytes: 1024 ** 3,
      cpu_limit_in_shares: 512,
      bandwidth: { rate: 10_000_000, burst: 1_000_000 },
      disk: { byte_limit: 2 * 1024 ** 3, inode_limit: 200_000 },
    },
    jobs: Array.from({ length: 10 }, (_, i) => job(i + 1)),
    created_at: 1_767_225_600_000,
    backend: { init_pid: 39981, init_start_time: 123450000, cgroup: `instance-${HANDLE}` },
  };
}
