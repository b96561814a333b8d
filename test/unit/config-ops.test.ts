// server.max_containers (default and ceiling: what the pools allow) and the effective
// config printed by --check-config (formatConfig), which must read back unchanged.
import { describe, expect, it } from 'vitest';
import { ConfigError, defaultConfig, parseConfig, poolCapacity } from '../../src/config/config.ts';
import { formatConfig } from '../../src/config/format.ts';
import type { WardenConfig } from '../../src/config/types.ts';

const RANGE = { localPortRange: [32768, 60999] as const };
const parse = (text: string) => parseConfig(text, 'test.yml', RANGE);
const plain = ({ warnings: _w, source: _s, ...c }: WardenConfig) => c;

describe('server.max_containers', () => {
  it('defaults to the smaller of the network and uid pools', () => {
    expect(defaultConfig(RANGE).server.max_containers).toBe(64);
    expect(parse('network: {pool_network: 10.0.0.0/22}\nuser: {pool_size: 300}').server.max_containers).toBe(256);
    expect(parse('network: {pool_start_address: 10.0.0.0, pool_size: 10}').server.max_containers).toBe(10);
    expect(parse('server: {max_containers: ~}').server.max_containers).toBe(64);
    expect(poolCapacity(parse('user: {pool_size: 7}'))).toBe(7);
  });

  it('takes a smaller value as it is, and lowers a larger one to the pools with a warning', () => {
    const small = parse('server: {max_containers: 10}');
    expect(small.server.max_containers).toBe(10);
    expect(small.warnings).toEqual([]);
    const big = parse('server: {max_containers: 1000}');
    expect(big.server.max_containers).toBe(64);
    expect(big.warnings).toEqual([
      'server.max_containers 1000 is more than the pools allow (network.pool_size 64, user.pool_size 64); using 64',
    ]);
  });

  it('rejects what is not a positive integer, naming the key', () => {
    for (const bad of ['0', '-3', '2.5', 'many', '[1]']) {
      let err: unknown;
      try {
        parse(`server: {max_containers: ${bad}}`);
      } catch (e) {
        err = e;
      }
      expect(err, bad).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).key).toBe('server.max_containers');
    }
  });
});

describe('formatConfig (warden-server --check-config)', () => {
  const configs: Record<string, string> = {
    defaults: '',
    'original pool form': 'network: {pool_start_address: 10.9.0.8, pool_size: 3}\nuser: {pool_start_uid: 20000, pool_size: 100}',
    'everything set': `
server:
  unix_domain_path: /run/warden.sock
  unix_domain_permissions: 0700
  container_klass: Warden::Container::Linux
  container_grace_time: ~
  container_rlimits: {nofile: 8192, nproc: 512}
  pidfile: /run/warden.pid
  quota: {disk_quota_enabled: false}
  worker_threads: 3
  max_containers: 12
  syslog_socket: /dev/log
health_check_server: {port: 0}
logging: {level: debug2, file: /var/log/warden.log}
network:
  pool_network: 10.250.0.0/20
  deny_networks: [10.0.0.0/8]
  allow_networks: [10.250.0.1]
  dns_servers: [8.8.8.8]
  allow_host_access: true
port: {pool_start_port: 61500, pool_size: 100}
`,
  };
  for (const [name, text] of Object.entries(configs)) {
    it(`reads back to the same config: ${name}`, () => {
      const config = parse(text);
      const printed = formatConfig(config);
      const back = parse(printed);
      expect(back.warnings).toEqual([]);
      expect(plain(back)).toEqual(plain(config));
    });
  }

  it('prints the file mode in octal and null as ~, and no bookkeeping fields', () => {
    const printed = formatConfig(parse('server: {unix_domain_permissions: 0750}'));
    expect(printed).toMatch(/^ {2}unix_domain_permissions: 0750$/m);
    expect(printed).toMatch(/^ {2}pidfile: ~$/m);
    expect(printed).not.toMatch(/warnings|source/);
    expect(printed).toMatch(/^ {2}max_containers: 64$/m);
  });
});
