// Reads the daemon's config: YAML in the original Warden format, with the original's
// defaults (warden/lib/warden/config.rb) plus a few keys of ours. Every key is
// checked once here, so the rest of the daemon trusts WardenConfig; a bad value stops
// the start with a message naming the key. Unknown keys are ignored, as the original
// did (old configs carry many), and listed in `warnings`.
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { isIP } from 'node:net';
import { parseDocument } from 'yaml';
import { coveringCidr, formatCidr, formatIpv4, networkOf, parseCidr, parseIpv4 } from '../model/ipv4.ts';
import { LOG_LEVEL_NAMES, isLogLevel } from './log-level.ts';
import type { ContainerKlass, NetworkConfig, ServerConfig, WardenConfig } from './types.ts';
import type { U64 } from '../protocol/types.ts';
import { ConfigError, Reader } from './reader.ts';

export { ConfigError } from './reader.ts';
import { u64 } from '../protocol/u64.ts';


export const CONTAINER_KLASSES: readonly ContainerKlass[] = ['Warden::Container::Linux', 'Warden::Container::Insecure'];

/** Rlimit names container_rlimits accepts (getrlimit(2), as the original listed them). */
export const RLIMIT_NAMES: readonly string[] = [
  'as', 'core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue',
  'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'sigpending', 'stack',
];

/** The kernel's ephemeral port range when /proc does not tell (the original's guess). */
export const FALLBACK_LOCAL_PORT_RANGE: readonly [number, number] = [32768, 61000];
/** Pooled host ports end here by default, as in the original. */
const PORT_POOL_END = 65000;
/** Largest network pool we build (a /8: 4M networks, ~20 MB of pool state). */
const MAX_NETWORK_POOL_SIZE = 1 << 22;
const LOCAL_PORT_RANGE_FILE = '/proc/sys/net/ipv4/ip_local_port_range';
const PID_MAX_FILE = '/proc/sys/kernel/pid_max';
/** The kernel's default pid_max, assumed when /proc does not tell. */
const FALLBACK_PID_MAX = 32768;

export interface ParseOptions {
  /**
   * The kernel's ephemeral port range, from which the port pool's default comes (it
   * starts just above it). Default: read once from /proc, or 32768-61000 when unreadable.
   */
  localPortRange?: readonly [number, number];
  /** The kernel's pid_max, from which server.container_pids_limit's default comes. Default: read from /proc. */
  pidMax?: number;
}

/** server.container_pids_limit when not given: 1/32 of the host's pid_max (1024 at the kernel's default 32768), 128..32768. */
export function defaultPidsLimit(pidMax: number): number {
  return Math.min(32768, Math.max(128, Math.floor(pidMax / 32)));
}

function pidMaxOnce(): number {
  try {
    const n = Number(readFileSync(PID_MAX_FILE, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : FALLBACK_PID_MAX;
  } catch {
    return FALLBACK_PID_MAX;
  }
}

/** Reads and parses a config file. Throws ConfigError naming the file or the key. */
export async function loadConfig(path: string, options: ParseOptions = {}): Promise<WardenConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new ConfigError(`cannot read config file: ${reason}`, { source: path, cause: err });
  }
  const localPortRange = options.localPortRange ?? (await readLocalPortRange());
  return parseConfig(text, path, { ...options, localPortRange });
}

/** The config with every default, as an empty file gives it. */
export function defaultConfig(options: ParseOptions = {}): WardenConfig {
  return parseConfig('', undefined, options);
}

/** Parses config YAML (YAML 1.1, as the original's Ruby read it: 0755 is octal). */
export function parseConfig(text: string, source?: string, options: ParseOptions = {}): WardenConfig {
  // uniqueKeys off: Ruby let a repeated key win silently, so old configs may repeat one.
  // Integers read exactly: an rlimit of 18446744073709551615 must not become 18446744073709552000.
  const doc = parseDocument(text, { version: '1.1', uniqueKeys: false, prettyErrors: true, intAsBigInt: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    throw new ConfigError(`invalid YAML: ${firstLine(e.message)}`, { source, cause: e });
  }
  const warnings = doc.warnings.map((w) => `YAML: ${firstLine(w.message)}`);
  const root: unknown = doc.toJS({ maxAliasCount: 1000, reviver: (_key, v) => (typeof v === 'bigint' ? u64(v) : v) });
  const r = new Reader('', root ?? {}, source, warnings);
  r.ignoreUnknown(['server', 'health_check_server', 'logging', 'network', 'port', 'user']);

  const config: WardenConfig = {
    server: readServer(r.section('server'), options.pidMax ?? pidMaxOnce()),
    health_check_server: readHealthCheck(r.section('health_check_server')),
    logging: readLogging(r.section('logging')),
    network: readNetwork(r.section('network')),
    port: readPort(r.section('port'), options.localPortRange ?? localPortRangeOnce()),
    user: readUser(r.section('user')),
    warnings,
  };
  settleMaxContainers(config, warnings);
  if (source !== undefined) config.source = source;
  return config;
}

/** The kernel's ephemeral port range, read from /proc; the fallback when unreadable. */
export async function readLocalPortRange(): Promise<[number, number]> {
  try {
    return parseLocalPortRange(await readFile(LOCAL_PORT_RANGE_FILE, 'utf8'));
  } catch {
    return [...FALLBACK_LOCAL_PORT_RANGE];
  }
}

let cachedLocalPortRange: [number, number] | undefined;

/** For parseConfig without options: read once per process, at config time (never on a request path). */
function localPortRangeOnce(): [number, number] {
  if (cachedLocalPortRange === undefined) {
    try {
      cachedLocalPortRange = parseLocalPortRange(readFileSync(LOCAL_PORT_RANGE_FILE, 'utf8'));
    } catch {
      cachedLocalPortRange = [...FALLBACK_LOCAL_PORT_RANGE];
    }
  }
  return cachedLocalPortRange;
}

function parseLocalPortRange(text: string): [number, number] {
  const [lo, hi] = text.trim().split(/\s+/).map(Number);
  if (!Number.isInteger(lo) || !Number.isInteger(hi)) throw new Error(`unexpected ${LOCAL_PORT_RANGE_FILE}: ${text}`);
  return [lo, hi];
}

function readServer(r: Reader, pidMax: number): ServerConfig {
  r.ignoreUnknown([
    'unix_domain_path', 'unix_domain_permissions', 'container_klass', 'container_rootfs_path',
    'container_depot_path', 'container_grace_time', 'container_rlimits', 'job_output_limit', 'pidfile',
    'quota', 'allow_nested_warden', 'container_runtime', 'worker_threads', 'max_frame_bytes', 'syslog_socket',
    'max_containers', 'container_pids_limit', 'container_cpu_shares', 'daemon_cpu_shares',
    'container_memory_limit', 'container_disk_limit', 'container_depot_reserve',
    'container_max_jobs', 'max_buffered_bytes', 'frame_idle_timeout', 'allow_host_root',
  ]);
  const klass = r.string('container_klass', 'Warden::Container::Insecure');
  if (!(CONTAINER_KLASSES as readonly string[]).includes(klass)) {
    throw r.error('container_klass', `must be one of ${CONTAINER_KLASSES.join(', ')}`, klass);
  }
  const quota = r.section('quota');
  quota.ignoreUnknown(['disk_quota_enabled']);
  return {
    unix_domain_path: r.string('unix_domain_path', '/tmp/warden.sock'),
    unix_domain_permissions: r.fileMode('unix_domain_permissions', 0o755),
    container_klass: klass as ContainerKlass,
    container_rootfs_path: r.string('container_rootfs_path', '/tmp/warden/rootfs'),
    container_depot_path: r.string('container_depot_path', '/tmp/warden/containers'),
    container_grace_time: r.nullableInteger('container_grace_time', 5 * 60, { min: 0 }),
    container_rlimits: readRlimits(r.section('container_rlimits')),
    job_output_limit: r.integer('job_output_limit', 10 * 1024 * 1024, { min: 1 }),
    pidfile: r.nullableString('pidfile', null),
    quota: { disk_quota_enabled: quota.boolean('disk_quota_enabled', true) },
    allow_nested_warden: r.boolean('allow_nested_warden', false),
    container_runtime: r.string('container_runtime', 'runc'),
    worker_threads: r.integer('worker_threads', availableParallelism(), { min: 1, max: 1024 }),
    max_frame_bytes: r.integer('max_frame_bytes', 16 * 1024 * 1024, { min: 1024 }),
    syslog_socket: r.nullableString('syslog_socket', null),
    // 0 stands for "not given" until the pools are known (see poolCapacity).
    max_containers: r.nullableInteger('max_containers', null, { min: 1 }) ?? 0,
    container_pids_limit: r.integer('container_pids_limit', defaultPidsLimit(pidMax), { min: 1 }),
    // cpu.shares: the kernel keeps them within 2..262144.
    container_cpu_shares: r.integer('container_cpu_shares', 512, { min: 2, max: 262144 }),
    daemon_cpu_shares: r.integer('daemon_cpu_shares', 1024, { min: 0, max: 262144 }),
    container_memory_limit: r.nullableInteger('container_memory_limit', 1 * GiB, { min: 4 * MiB }),
    container_disk_limit: r.nullableInteger('container_disk_limit', 10 * GiB, { min: 1 * MiB }),
    container_depot_reserve: r.nullableInteger('container_depot_reserve', null, { min: 0 }),
    container_max_jobs: r.integer('container_max_jobs', 100, { min: 1 }),
    max_buffered_bytes: readMaxBuffered(r),
    frame_idle_timeout: r.nullableNumber('frame_idle_timeout', 30, { min: 0.001 }),
    allow_host_root: r.boolean('allow_host_root', false),
  };
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** server.max_buffered_bytes: at least one frame of max_frame_bytes must fit. */
function readMaxBuffered(r: Reader): number {
  const maxFrame = r.integer('max_frame_bytes', 16 * MiB, { min: 1024 });
  const value = r.integer('max_buffered_bytes', Math.max(64 * MiB, 2 * maxFrame), { min: 1024 });
  if (value < maxFrame + 64) throw r.error('max_buffered_bytes', `must be more than server.max_frame_bytes (${maxFrame})`, value);
  return value;
}

/**
 * The most containers the pools allow: each takes one /30 and one uid (ports only
 * with NetIn, so they do not bound the count).
 */
export function poolCapacity(config: Pick<WardenConfig, 'network' | 'user'>): number {
  return Math.min(config.network.pool_size, config.user.pool_size);
}

/** server.max_containers: the pools' capacity when not given, and never more. */
function settleMaxContainers(config: WardenConfig, warnings: string[]): void {
  const capacity = poolCapacity(config);
  const asked = config.server.max_containers;
  if (asked === 0) {
    config.server.max_containers = capacity;
  } else if (asked > capacity) {
    warnings.push(
      `server.max_containers ${asked} is more than the pools allow (network.pool_size ${config.network.pool_size}, ` +
        `user.pool_size ${config.user.pool_size}); using ${capacity}`,
    );
    config.server.max_containers = capacity;
  }
}

function readRlimits(r: Reader): Record<string, U64> {
  r.ignoreUnknown(RLIMIT_NAMES);
  const out: Record<string, U64> = {};
  for (const name of RLIMIT_NAMES) {
    if (r.has(name)) out[name] = r.uint64(name);
  }
  return out;
}

function readHealthCheck(r: Reader): WardenConfig['health_check_server'] {
  r.ignoreUnknown(['port', 'unix_domain_path', 'containers_on_tcp']);
  // 0 turns the health check off (the daemon starts none; useful in tests).
  return {
    port: r.integer('port', 2345, { min: 0, max: 65535 }),
    unix_domain_path: r.nullableString('unix_domain_path', null),
    containers_on_tcp: r.boolean('containers_on_tcp', false),
  };
}

function readLogging(r: Reader): WardenConfig['logging'] {
  r.ignoreUnknown(['level', 'file', 'syslog']);
  const level = r.string('level', 'info').toLowerCase();
  if (!isLogLevel(level)) throw r.error('level', `must be one of ${LOG_LEVEL_NAMES.join(', ')}`, level);
  return {
    level,
    file: r.nullableString('file', null),
    syslog: r.nullableString('syslog', null),
  };
}

function readNetwork(r: Reader): NetworkConfig {
  r.ignoreUnknown([
    'pool_network', 'pool_start_address', 'pool_size', 'release_delay', 'deny_networks',
    'allow_networks', 'allow_host_access', 'mtu', 'dns_servers', 'host_resolv_conf',
  ]);
  let first: number;
  let count: number;
  let poolNetwork: string;
  if (r.has('pool_start_address') && r.has('pool_size')) {
    // The original's older form; it wins over pool_network, as it did there.
    const startText = r.string('pool_start_address', '');
    const start = parseIpv4(startText);
    if (start === undefined) throw r.error('pool_start_address', 'must be an IPv4 address', startText);
    count = r.integer('pool_size', 0, { min: 1, max: MAX_NETWORK_POOL_SIZE });
    first = networkOf(start, 30);
    if (first !== start) {
      r.warn(`${r.key('pool_start_address')} ${startText} is not a /30 network address; the pool starts at ${formatIpv4(first)}`);
    }
    if (first + count * 4 - 1 > 0xffffffff) {
      throw r.error('pool_size', `is too large: ${count} /30 networks from ${formatIpv4(first)} pass 255.255.255.255`, count);
    }
    poolNetwork = formatCidr(coveringCidr(first, first + count * 4 - 1));
    if (r.has('pool_network')) {
      r.warn(`${r.key('pool_network')} is ignored: ${r.key('pool_start_address')} and ${r.key('pool_size')} are given`);
    }
  } else {
    for (const k of ['pool_start_address', 'pool_size']) {
      if (r.has(k)) r.warn(`${r.key(k)} is ignored without ${r.key(k === 'pool_size' ? 'pool_start_address' : 'pool_size')}`);
    }
    const text = r.string('pool_network', '10.254.0.0/24');
    const cidr = parseCidr(text);
    if (cidr === undefined || !text.includes('/')) throw r.error('pool_network', 'must be a CIDR block like 10.254.0.0/24', text);
    if (cidr.prefix > 30 || cidr.prefix < 8) throw r.error('pool_network', 'must have a prefix length between /8 and /30', text);
    if (cidr.hostBits) r.warn(`${r.key('pool_network')} ${text} has host bits set; using ${formatCidr(cidr)}`);
    first = cidr.address;
    count = 2 ** (32 - cidr.prefix) / 4;
    poolNetwork = formatCidr(cidr);
  }
  return {
    pool_network: poolNetwork,
    pool_start_address: formatIpv4(first),
    pool_size: count,
    release_delay: r.number('release_delay', 5, { min: 0 }),
    deny_networks: r.stringList('deny_networks', checkNetwork),
    allow_networks: r.stringList('allow_networks', checkNetwork),
    allow_host_access: r.boolean('allow_host_access', false),
    mtu: r.integer('mtu', 1500, { min: 68, max: 65535 }),
    dns_servers: readDnsServers(r),
    host_resolv_conf: r.string('host_resolv_conf', '/etc/resolv.conf'),
  };
}

/** Written into containers' resolv.conf as given, as the original did; an entry that is not an IP address is only warned about. */
function readDnsServers(r: Reader): string[] {
  const servers = r.stringList('dns_servers', () => undefined);
  servers.forEach((s, i) => {
    if (isIP(s) === 0) r.warn(`${r.key(`dns_servers[${i}]`)} ${JSON.stringify(s)} is not an IP address; containers get it in resolv.conf as given`);
  });
  return servers;
}

/** Entries of allow/deny_networks: an address or a CIDR block, as iptables takes them. */
function checkNetwork(s: string): string | undefined {
  return parseCidr(s) === undefined ? 'an IPv4 address or CIDR block' : undefined;
}

function readPort(r: Reader, localPortRange: readonly [number, number]): WardenConfig['port'] {
  r.ignoreUnknown(['pool_start_port', 'pool_size']);
  const ephemeralEnd = localPortRange[1];
  const explicitStart = r.has('pool_start_port');
  const start = r.integer('pool_start_port', ephemeralEnd + 1, { min: 1, max: 65535 }, !explicitStart);
  // Ports run up to 65000 by default, as the original; past it when the start already is.
  const defaultSize = (start <= PORT_POOL_END ? PORT_POOL_END + 1 : 65536) - start;
  const size = r.integer('pool_size', defaultSize, { min: 1 }, !r.has('pool_size') && !explicitStart);
  if (!explicitStart && !(start <= 65535 && size >= 1)) {
    throw r.error(
      'pool_start_port',
      `has no usable default: the ephemeral port range ${localPortRange[0]}-${ephemeralEnd} leaves no ports above it; set ${r.key('pool_start_port')} and ${r.key('pool_size')}`,
    );
  }
  if (start + size - 1 > 65535) {
    throw r.error('pool_size', `is too large: ${size} ports from ${start} pass 65535`, size);
  }
  if (start <= ephemeralEnd && start + size - 1 >= localPortRange[0]) {
    r.warn(
      `port pool ${start}-${start + size - 1} overlaps the kernel's ephemeral port range ${localPortRange[0]}-${ephemeralEnd}; mapped ports may collide with outgoing connections`,
    );
  }
  return { pool_start_port: start, pool_size: size };
}

function readUser(r: Reader): WardenConfig['user'] {
  r.ignoreUnknown(['pool_start_uid', 'pool_size']);
  const start = r.integer('pool_start_uid', 10000, { min: 1, max: 0xfffffffe });
  const size = r.integer('pool_size', 64, { min: 1, max: 1 << 24 });
  if (start + size - 1 > 0xfffffffe) throw r.error('pool_size', `is too large: ${size} uids from ${start} pass 4294967294`, size);
  return { pool_start_uid: start, pool_size: size };
}

/** The yaml library's pretty messages end their first line with "at line L, column C:" and then quote the source. */
function firstLine(message: string): string {
  return message.split('\n')[0].replace(/:$/, '');
}
