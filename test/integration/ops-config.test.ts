// `warden-server --check-config FILE` on good and bad files, and server.max_containers
// enforced by the real daemon (insecure backend), with its figures in /metrics.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.ts';
import { ROOT, SERVER_BIN, TestDaemon } from '../support/daemon.ts';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function checkConfig(file: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile(SERVER_BIN, ['--check-config', file], (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('warden-server --check-config', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'warden-check-config-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const file = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  it('accepts the shipped config and prints the effective one, which reads back the same', async () => {
    for (const shipped of ['config/warden.yml', 'config/insecure.yml']) {
      const r = await checkConfig(join(ROOT, shipped));
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toBe('');
      const printed = parseConfig(r.stdout);
      expect(printed.warnings).toEqual([]);
      const original = parseConfig(readFileSync(join(ROOT, shipped), 'utf8'));
      const { warnings: _a, ...p } = printed;
      const { warnings: _b, ...o } = original;
      expect(p).toEqual(o);
    }
  });

  it('fills in every default, max_containers included', async () => {
    const r = await checkConfig(file('minimal.yml', 'server:\n  container_depot_path: /srv/depot\nuser:\n  pool_size: 40\n'));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ {2}container_depot_path: \/srv\/depot$/m);
    expect(r.stdout).toMatch(/^ {2}unix_domain_path: \/tmp\/warden\.sock$/m);
    expect(r.stdout).toMatch(/^ {2}unix_domain_permissions: 0755$/m);
    expect(r.stdout).toMatch(/^ {2}container_grace_time: 300$/m);
    expect(r.stdout).toMatch(/^ {2}port: 2345$/m);
    // 64 networks in the default /24, 40 uids: 40 containers at most.
    expect(r.stdout).toMatch(/^ {2}max_containers: 40$/m);
  });

  it('warns about unknown keys and a max_containers above the pools, and still exits 0', async () => {
    const r = await checkConfig(file('warn.yml', 'server:\n  max_containers: 5000\n  colour: blue\n'));
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning: unknown key server\.colour ignored/);
    expect(r.stderr).toMatch(/warning: server\.max_containers 5000 is more than the pools allow .*using 64/);
    expect(r.stdout).toMatch(/^ {2}max_containers: 64$/m);
  });

  it('rejects bad files with exit 1 and a message naming the key or the file', async () => {
    const cases: [string, string, RegExp][] = [
      ['grace.yml', 'server:\n  container_grace_time: -1\n', /server\.container_grace_time must be at least 0/],
      ['klass.yml', 'server:\n  container_klass: Warden::Container::Jail\n', /server\.container_klass must be one of/],
      ['max.yml', 'server:\n  max_containers: 0\n', /server\.max_containers must be at least 1/],
      ['maxtype.yml', 'server:\n  max_containers: lots\n', /server\.max_containers must be a number or null/],
      ['pool.yml', 'network:\n  pool_network: 10.0.0.0/31\n', /network\.pool_network must have a prefix length/],
      ['yaml.yml', 'server: [unclosed\n', /invalid YAML/],
    ];
    const runs = await Promise.all(cases.map(([name, text]) => checkConfig(file(name, text))));
    for (const [i, [name, , message]] of cases.entries()) {
      const r = runs[i]!;
      expect(r.code, name).toBe(1);
      expect(r.stdout, name).toBe('');
      expect(r.stderr, name).toMatch(message);
      expect(r.stderr, name).toContain(join(dir, name));
    }
    const missing = await checkConfig(join(dir, 'absent.yml'));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/absent\.yml: cannot read config file: ENOENT/);
  });
});

describe('server.max_containers', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await TestDaemon.start({ server: { max_containers: 2 } });
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it('refuses creates past it with a clear error, also when they race, and counts the refusals', async () => {
    const clients = await Promise.all(Array.from({ length: 6 }, () => d.client()));
    const results = await Promise.allSettled(clients.map((c) => c.create({})));
    const created = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(created).toHaveLength(2);
    expect(refused).toHaveLength(4);
    for (const r of refused) {
      expect(String(r.reason?.message)).toBe('cannot create container: the daemon holds its maximum of 2 containers (server.max_containers)');
    }
    const c = clients[0]!;
    expect((await c.list()).handles).toHaveLength(2);

    const metrics = await scrapeText(d.healthPort);
    expect(metrics).toMatch(/^warden_containers_max 2$/m);
    expect(metrics).toMatch(/^warden_containers\{state="active"\} 2$/m);
    expect(metrics).toMatch(/^warden_create_refusals_total\{reason="max_containers"\} 4$/m);

    // Room again after a destroy.
    const [first] = (await c.list()).handles!;
    await c.destroy({ handle: first! });
    await expect(c.create({})).resolves.toHaveProperty('handle');
    await expect(c.create({})).rejects.toThrow(/server\.max_containers/);
    await Promise.all(clients.map((k) => k.close()));
  });
});

function scrapeText(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'));
    const chunks: Buffer[] = [];
    s.on('data', (b) => chunks.push(b));
    s.on('close', () => resolve(Buffer.concat(chunks).toString()));
    s.on('error', reject);
  });
}
