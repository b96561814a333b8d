// server.container_pids_limit (default from the host's pid_max), server.container_cpu_shares
// and server.daemon_cpu_shares: defaults, bounds, and what --check-config prints.
import { describe, expect, it } from 'vitest';
import { ConfigError, defaultPidsLimit, parseConfig } from '../../src/config/config.ts';
import { formatConfig } from '../../src/config/format.ts';

const opts = (pidMax: number) => ({ localPortRange: [32768, 60999] as const, pidMax });
const parse = (text: string, pidMax = 32768) => parseConfig(text, 'test.yml', opts(pidMax));

describe('container pids and cpu defaults', () => {
  it('derives the pids limit from pid_max: 1/32 of it, within 128..32768', () => {
    expect(parse('').server.container_pids_limit).toBe(1024);
    expect(parse('', 4_194_304).server.container_pids_limit).toBe(32768);
    expect(parse('', 2048).server.container_pids_limit).toBe(128);
    expect(defaultPidsLimit(65536)).toBe(2048);
    expect(parse('server: {container_pids_limit: 300}').server.container_pids_limit).toBe(300);
  });

  it('gives containers fewer cpu shares than the daemon by default', () => {
    const { server } = parse('');
    expect(server.container_cpu_shares).toBe(512);
    expect(server.daemon_cpu_shares).toBe(1024);
    expect(server.container_cpu_shares).toBeLessThan(server.daemon_cpu_shares);
    const set = parse('server: {container_cpu_shares: 100, daemon_cpu_shares: 0}').server;
    expect([set.container_cpu_shares, set.daemon_cpu_shares]).toEqual([100, 0]);
  });

  it('refuses values the kernel would not take, naming the key', () => {
    for (const [key, bad] of [['container_pids_limit', '0'], ['container_cpu_shares', '1'], ['container_cpu_shares', '300000'], ['daemon_cpu_shares', '-1'], ['daemon_cpu_shares', 'lots']]) {
      expect(() => parse(`server: {${key}: ${bad}}`), `${key}: ${bad}`).toThrow(ConfigError);
      expect(() => parse(`server: {${key}: ${bad}}`)).toThrow(`server.${key}`);
    }
  });

  it('prints the effective values in --check-config', () => {
    const text = formatConfig(parse(''));
    expect(text).toMatch(/container_pids_limit: 1024/);
    expect(text).toMatch(/container_cpu_shares: 512/);
    expect(text).toMatch(/daemon_cpu_shares: 1024/);
  });
});
