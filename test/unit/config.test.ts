import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, defaultConfig, loadConfig, parseConfig, readLocalPortRange } from '../../src/config/config.ts';
import { isLogLevel, pinoLevel } from '../../src/config/log-level.ts';

const RANGE = { localPortRange: [32768, 60999] as const, pidMax: 32768 };

function parse(text: string) {
  return parseConfig(text, undefined, RANGE);
}

function errorOf(text: string, source?: string): ConfigError {
  try {
    parseConfig(text, source, RANGE);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('defaults', () => {
  it('are the original Warden defaults plus ours', () => {
    const c = defaultConfig(RANGE);
    expect(c.server).toEqual({
      unix_domain_path: '/tmp/warden.sock',
      unix_domain_permissions: 0o755,
      container_klass: 'Warden::Container::Insecure',
      container_rootfs_path: '/tmp/warden/rootfs',
      container_depot_path: '/tmp/warden/containers',
      container_grace_time: 300,
      container_rlimits: {},
      job_output_limit: 10 * 1024 * 1024,
      pidfile: null,
      quota: { disk_quota_enabled: true },
      allow_nested_warden: false,
      allow_host_root: false,
      container_runtime: 'runc',
      worker_threads: availableParallelism(),
      max_frame_bytes: 16 * 1024 * 1024,
      syslog_socket: null,
      // Ours: what the pools allow (64 networks in the /24, 64 uids).
      max_containers: 64,
      // Ours: 1/32 of the host's pid_max; containers below the daemon's cpu weight.
      container_pids_limit: 1024,
      container_cpu_shares: 512,
      daemon_cpu_shares: 1024,
      container_memory_limit: 1024 * 1024 * 1024,
      container_disk_limit: 10 * 1024 * 1024 * 1024,
      container_depot_reserve: null,
      container_max_jobs: 100,
      max_buffered_bytes: 64 * 1024 * 1024,
      frame_idle_timeout: 30,
    });
    expect(c.health_check_server).toEqual({ port: 2345, unix_domain_path: null, containers_on_tcp: false });
    expect(c.logging).toEqual({ level: 'info', file: null, syslog: null });
    expect(c.network).toEqual({
      pool_network: '10.254.0.0/24',
      pool_start_address: '10.254.0.0',
      pool_size: 64,
      release_delay: 5,
      deny_networks: [],
      allow_networks: [],
      allow_host_access: false,
      mtu: 1500,
      dns_servers: [],
      host_resolv_conf: '/etc/resolv.conf',
    });
    expect(c.user).toEqual({ pool_start_uid: 10000, pool_size: 64 });
    expect(c.warnings).toEqual([]);
    expect(c.source).toBeUndefined();
  });

  it('put the port pool above the ephemeral range, up to 65000', () => {
    expect(parseConfig('', undefined, { localPortRange: [32768, 61000] }).port).toEqual({ pool_start_port: 61001, pool_size: 4000 });
    expect(parseConfig('', undefined, { localPortRange: [32768, 60999] }).port).toEqual({ pool_start_port: 61000, pool_size: 4001 });
  });

  it('refuse a port pool default that leaves no ports, unless the pool is configured', () => {
    const full = { localPortRange: [1024, 65535] as const };
    expect(() => parseConfig('', undefined, full)).toThrow(/port\.pool_start_port has no usable default/);
    expect(parseConfig('port: {pool_start_port: 20000, pool_size: 100}', undefined, full).port).toEqual({
      pool_start_port: 20000,
      pool_size: 100,
    });
    // Ephemeral range ending at 65000 or above 65000: the rest up to 65535.
    expect(parseConfig('', undefined, { localPortRange: [32768, 65000] }).port).toEqual({ pool_start_port: 65001, pool_size: 535 });
  });

  it('read the ephemeral range from /proc when not given', async () => {
    const [lo, hi] = await readLocalPortRange();
    expect(lo).toBeLessThan(hi);
    expect(parseConfig('').port.pool_start_port).toBe(hi + 1);
  });

  it('come from an empty file, an empty document or null sections', () => {
    expect(parse('').server.container_grace_time).toBe(300);
    expect(parse('---\n').network.pool_size).toBe(64);
    expect(parse('server:\nnetwork: ~\n').server.unix_domain_path).toBe('/tmp/warden.sock');
  });
});

describe('original format', () => {
  it('reads 0777 as octal, as Ruby (YAML 1.1) did', () => {
    expect(parse('server:\n  unix_domain_permissions: 0777\n').server.unix_domain_permissions).toBe(0o777);
    expect(parse('server:\n  unix_domain_permissions: 0o700\n').server.unix_domain_permissions).toBe(0o700);
    expect(parse('server:\n  unix_domain_permissions: "0755"\n').server.unix_domain_permissions).toBe(0o755);
    expect(parse('server:\n  unix_domain_permissions: 511\n').server.unix_domain_permissions).toBe(0o777);
  });

  it('takes YAML 1.1 booleans and ~', () => {
    const c = parse('server:\n  allow_nested_warden: yes\n  container_grace_time: ~\n  quota:\n    disk_quota_enabled: off\n');
    expect(c.server.allow_nested_warden).toBe(true);
    expect(c.server.container_grace_time).toBeNull();
    expect(c.server.quota.disk_quota_enabled).toBe(false);
  });

  it('reads a full config of the original kind', () => {
    const c = parse(`
server:
  container_klass: Warden::Container::Linux
  container_grace_time: 30
  unix_domain_permissions: 0777
  container_rootfs_path: /var/vcap/packages/rootfs
  container_depot_path: /var/vcap/data/warden/depot
  container_rlimits:
    nofile: 8192
    as: 4294967296
  pidfile: /var/vcap/sys/run/warden/warden.pid
  quota:
    disk_quota_enabled: true
  container_limits_conf:
    nofile: 8192
health_check_server:
  port: 2345
logging:
  file: /var/vcap/sys/log/warden/warden.log
  level: debug2
network:
  pool_start_address: 10.254.0.0
  pool_size: 256
  deny_networks:
    - 0.0.0.0/0
  allow_networks:
    - 169.254.0.2
    -
  mtu: 1454
user:
  pool_start_uid: 20000
  pool_size: 256
`);
    expect(c.server.container_klass).toBe('Warden::Container::Linux');
    expect(c.server.container_rlimits).toEqual({ nofile: 8192, as: 4294967296 });
    expect(c.server.unix_domain_permissions).toBe(0o777);
    expect(c.logging.level).toBe('debug2');
    expect(c.network.pool_network).toBe('10.254.0.0/22');
    expect(c.network.pool_size).toBe(256);
    expect(c.network.deny_networks).toEqual(['0.0.0.0/0']);
    expect(c.network.allow_networks).toEqual(['169.254.0.2']);
    expect(c.network.mtu).toBe(1454);
    expect(c.user).toEqual({ pool_start_uid: 20000, pool_size: 256 });
    expect(c.warnings).toEqual(['unknown key server.container_limits_conf ignored']);
  });

  it('supports anchors and merge keys', () => {
    const c = parse('common: &net\n  mtu: 9000\nnetwork:\n  <<: *net\n  release_delay: 0\n');
    expect(c.network.mtu).toBe(9000);
    expect(c.network.release_delay).toBe(0);
    expect(c.warnings).toEqual(['unknown key common ignored']);
  });

  it('lets a repeated key win, as Ruby did', () => {
    expect(parse('user:\n  pool_size: 10\n  pool_size: 20\n').user.pool_size).toBe(20);
  });
});

describe('network pool', () => {
  it('is pool_network: every /30 in it', () => {
    const n = parse('network: {pool_network: 10.20.0.0/22}').network;
    expect(n).toMatchObject({ pool_network: '10.20.0.0/22', pool_start_address: '10.20.0.0', pool_size: 256 });
  });

  it('is exactly pool_size /30s from pool_start_address, with the covering block for display', () => {
    const n = parse('network: {pool_start_address: 10.254.0.4, pool_size: 10}').network;
    expect(n).toMatchObject({ pool_network: '10.254.0.0/26', pool_start_address: '10.254.0.4', pool_size: 10 });
  });

  it('prefers pool_start_address + pool_size over pool_network, as the original did', () => {
    const c = parse('network: {pool_network: 10.1.0.0/24, pool_start_address: 10.2.0.0, pool_size: 4}');
    expect(c.network).toMatchObject({ pool_network: '10.2.0.0/28', pool_start_address: '10.2.0.0', pool_size: 4 });
    expect(c.warnings).toEqual(['network.pool_network is ignored: network.pool_start_address and network.pool_size are given']);
  });

  it('ignores half of the start+size form, with a warning', () => {
    const c = parse('network: {pool_size: 4}');
    expect(c.network.pool_size).toBe(64);
    expect(c.warnings).toEqual(['network.pool_size is ignored without network.pool_start_address']);
  });

  it('clears host bits and aligns the start to a /30, with warnings', () => {
    const a = parse('network: {pool_network: 10.254.0.5/24}');
    expect(a.network).toMatchObject({ pool_network: '10.254.0.0/24', pool_start_address: '10.254.0.0' });
    expect(a.warnings).toHaveLength(1);
    const b = parse('network: {pool_start_address: 10.254.0.6, pool_size: 2}');
    expect(b.network).toMatchObject({ pool_start_address: '10.254.0.4', pool_size: 2 });
    expect(b.warnings).toHaveLength(1);
  });
});

describe('validation', () => {
  it.each([
    ['server: {container_grace_time: 5m}', 'server.container_grace_time must be a number or null (got "5m")'],
    ['server: {container_grace_time: 1.5}', 'server.container_grace_time must be an integer or null'],
    ['server: {container_grace_time: -1}', 'server.container_grace_time must be at least 0'],
    ['server: {container_klass: Warden::Container::Docker}', 'server.container_klass must be one of Warden::Container::Linux, Warden::Container::Insecure'],
    ['server: {unix_domain_path: 3}', 'server.unix_domain_path must be a non-empty string (got 3)'],
    ['server: {unix_domain_path: ~}', 'server.unix_domain_path must be a non-empty string (got null)'],
    ['server: {unix_domain_permissions: rwx}', 'server.unix_domain_permissions must be an octal file mode'],
    ['server: {unix_domain_permissions: 010000}', 'server.unix_domain_permissions must be at most 4095'],
    ['server: {job_output_limit: "10M"}', 'server.job_output_limit must be a number'],
    ['server: {allow_nested_warden: maybe}', 'server.allow_nested_warden must be true or false'],
    ['server: {quota: {disk_quota_enabled: 1}}', 'server.quota.disk_quota_enabled must be true or false'],
    ['server: {quota: [1]}', 'server.quota must be a map'],
    ['server: {container_rlimits: {nofile: lots}}', 'server.container_rlimits.nofile must be a number'],
    ['server: {worker_threads: 0}', 'server.worker_threads must be at least 1'],
    ['server: {pidfile: [a]}', 'server.pidfile must be a non-empty string or null (got a list)'],
    ['server: 3', 'server must be a map'],
    ['health_check_server: {port: 70000}', 'health_check_server.port must be at most 65535'],
    ['logging: {level: verbose}', 'logging.level must be one of'],
    ['network: {pool_network: 10.254.0.0}', 'network.pool_network must be a CIDR block'],
    ['network: {pool_network: 10.254.0.300/24}', 'network.pool_network must be a CIDR block'],
    ['network: {pool_network: 10.254.0.0/31}', 'network.pool_network must have a prefix length between /8 and /30'],
    ['network: {pool_start_address: 10.254.0, pool_size: 4}', 'network.pool_start_address must be an IPv4 address'],
    ['network: {pool_start_address: 10.254.0.0, pool_size: 0}', 'network.pool_size must be at least 1'],
    ['network: {pool_start_address: 255.255.255.0, pool_size: 100}', 'network.pool_size is too large'],
    ['network: {deny_networks: 10.0.0.0/8}', 'network.deny_networks must be a list'],
    ['network: {allow_networks: [10.0.0.0/33]}', 'network.allow_networks[0] must be an IPv4 address or CIDR block'],
    ['network: {mtu: 9000.5}', 'network.mtu must be an integer'],
    ['network: {release_delay: -1}', 'network.release_delay must be at least 0'],
    ['port: {pool_start_port: 65000, pool_size: 1000}', 'port.pool_size is too large'],
    ['port: {pool_start_port: 0}', 'port.pool_start_port must be at least 1'],
    ['user: {pool_start_uid: 0}', 'user.pool_start_uid must be at least 1'],
    ['user: {pool_size: "64"}', 'user.pool_size must be a number (got "64")'],
    ['- 1', 'the config must be a map'],
  ])('%s → %s', (text, message) => {
    const err = errorOf(text);
    expect(err.message).toContain(message);
  });

  it('names the key and the file', () => {
    const err = errorOf('server:\n  container_grace_time: soon\n', '/etc/warden.yml');
    expect(err.message).toBe('/etc/warden.yml: server.container_grace_time must be a number or null (got "soon")');
    expect(err.key).toBe('server.container_grace_time');
    expect(err.source).toBe('/etc/warden.yml');
  });

  it('reports YAML syntax errors with their line', () => {
    const err = errorOf('server:\n  a: [1, 2\n', 'w.yml');
    expect(err.message).toMatch(/^w\.yml: invalid YAML: .*line \d+/);
  });

  it('keeps dns_servers as given (as the original wrote them) and warns about entries that are not IP addresses', () => {
    const c = parse('network: {dns_servers: [8.8.8.8, dns.google, "2001:db8::53"]}\n');
    expect(c.network.dns_servers).toEqual(['8.8.8.8', 'dns.google', '2001:db8::53']);
    expect(c.warnings).toEqual(['network.dns_servers[1] "dns.google" is not an IP address; containers get it in resolv.conf as given']);
  });

  it('lists unknown keys as warnings and otherwise ignores them', () => {
    const c = parse('foo: 1\nserver:\n  bar: 2\n  container_rlimits: {nofile: 10, wat: 3}\n');
    expect(c.warnings).toEqual([
      'unknown key foo ignored',
      'unknown key server.bar ignored',
      'unknown key server.container_rlimits.wat ignored',
    ]);
    expect(c.server.container_rlimits).toEqual({ nofile: 10 });
  });

  it('warns when the port pool overlaps the ephemeral range', () => {
    const c = parse('port: {pool_start_port: 40000, pool_size: 100}');
    expect(c.warnings).toEqual([expect.stringContaining('overlaps the kernel\'s ephemeral port range 32768-60999')]);
  });
});

describe('loadConfig', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'warden-config-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads a file and records its path', async () => {
    const path = join(dir, 'a.yml');
    await writeFile(path, 'server:\n  container_grace_time: 10\n');
    const c = await loadConfig(path);
    expect(c.server.container_grace_time).toBe(10);
    expect(c.source).toBe(path);
  });

  it('names a missing file', async () => {
    const path = join(dir, 'missing.yml');
    await expect(loadConfig(path)).rejects.toThrow(`${path}: cannot read config file: ENOENT`);
    await expect(loadConfig(path)).rejects.toBeInstanceOf(ConfigError);
  });

  it('names the file in validation errors', async () => {
    const path = join(dir, 'bad.yml');
    await writeFile(path, 'user: {pool_size: many}\n');
    await expect(loadConfig(path)).rejects.toThrow(`${path}: user.pool_size must be a number`);
  });

  it.each(['config/warden.yml', 'config/insecure.yml'])('loads the shipped %s without warnings', async (file) => {
    const c = await loadConfig(new URL(`../../${file}`, import.meta.url).pathname);
    expect(c.warnings).toEqual([]);
  });

  it('ships a Linux default and an insecure development config', async () => {
    const linux = await loadConfig(new URL('../../config/warden.yml', import.meta.url).pathname);
    expect(linux.server).toMatchObject({
      container_klass: 'Warden::Container::Linux',
      unix_domain_path: '/tmp/warden.sock',
      container_depot_path: '/var/lib/warden/containers',
      container_rootfs_path: '/var/lib/warden/rootfs',
      pidfile: '/run/warden.pid',
    });
    expect(linux.logging.file).toBeNull();
    const insecure = await loadConfig(new URL('../../config/insecure.yml', import.meta.url).pathname);
    expect(insecure.server.container_klass).toBe('Warden::Container::Insecure');
    expect(insecure.server.container_depot_path.startsWith('/tmp/warden-insecure/')).toBe(true);
    expect(insecure.server.container_rootfs_path.startsWith('/tmp/warden-insecure/')).toBe(true);
  });
});

describe('log levels', () => {
  it('map the original names to pino levels', () => {
    expect(pinoLevel('debug2')).toBe('trace');
    expect(pinoLevel('debug1')).toBe('trace');
    expect(pinoLevel('debug')).toBe('debug');
    expect(pinoLevel('info')).toBe('info');
    expect(pinoLevel('warn')).toBe('warn');
    expect(pinoLevel('error')).toBe('error');
    expect(pinoLevel('fatal')).toBe('fatal');
    expect(pinoLevel('off')).toBe('silent');
    expect(pinoLevel('INFO')).toBe('info');
    expect(() => pinoLevel('loud')).toThrow(RangeError);
    expect(isLogLevel('constructor')).toBe(false);
  });

  it('are accepted in any case and kept in lower case', () => {
    expect(parse('logging: {level: WARN}').logging.level).toBe('warn');
  });
});
