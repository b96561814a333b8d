// The systemd unit (config/warden.service) and scripts/install, scripts/uninstall.
//
// `systemd-analyze verify` also checks that ExecStart's program exists. On a host
// where the daemon is installed, the unit is verified as it is; elsewhere (CI) it is
// verified as it is in a private mount namespace in which this checkout stands where
// the install would put a release (/opt/warden/current), so the unit's paths lead
// to this very build. Nothing on the host changes.
import { execFile } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../support/daemon.ts';

const UNIT = 'config/warden.service';
const UNIT_PREFIX = '/opt/warden/current';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], cwd = ROOT): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 127) : 0;
      resolve({ code, stdout, stderr: stderr || (err && code === 127 ? String(err.message) : '') });
    });
  });
}

/** The unit's settings of one section, key → values (repeated keys accumulate). */
function unitSettings(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) out.set(m[1]!, [...(out.get(m[1]!) ?? []), m[2]!]);
  }
  return out;
}

describe('config/warden.service', () => {
  it('passes systemd-analyze verify', async () => {
    const shell = `set -e
mount -t tmpfs warden-verify /opt
mkdir -p ${UNIT_PREFIX}
mount --bind "$1" ${UNIT_PREFIX}
exec systemd-analyze verify ${UNIT}`;
    let r: Run;
    if (existsSync(join(UNIT_PREFIX, 'bin/warden-server'))) {
      r = await run('systemd-analyze', ['verify', UNIT]);
    } else {
      expect(existsSync('/opt'), '/opt must exist to stand this checkout in for an install').toBe(true);
      const asRoot = process.getuid?.() === 0;
      const ns = asRoot ? ['--mount', '--propagation', 'private'] : ['--user', '--map-root-user', '--mount', '--propagation', 'private'];
      r = await run('unshare', [...ns, '--', 'sh', '-c', shell, 'verify', ROOT]);
    }
    expect(r.stderr + r.stdout).toBe('');
    expect(r.code).toBe(0);
  });

  it('drains on stop and never kills container processes', () => {
    const s = unitSettings(readFileSync(join(ROOT, UNIT), 'utf8'));
    expect(s.get('ExecStart')).toEqual([`${UNIT_PREFIX}/bin/warden-server --config /etc/warden/warden.yml`]);
    expect(s.get('ExecStartPre')).toEqual([`${UNIT_PREFIX}/bin/warden-server --check-config /etc/warden/warden.yml`]);
    expect(s.get('ExecReload')).toEqual(['/bin/kill -HUP $MAINPID']);
    // SIGUSR2 to the daemon alone: a drain; the rest of the cgroup (containers, jobs) stays.
    expect(s.get('KillSignal')).toEqual(['SIGUSR2']);
    expect(s.get('KillMode')).toEqual(['process']);
    expect(s.get('Delegate')).toEqual(['yes']);
    // A container's OOM kill must not stop the service (the default OOMPolicy=stop would).
    expect(s.get('OOMPolicy')).toEqual(['continue']);
    expect(s.get('Restart')).toEqual(['on-failure']);
    expect(Number(s.get('LimitNOFILE')?.[0])).toBeGreaterThanOrEqual(65536);
    expect(s.get('TasksMax')).toEqual(['infinity']);
    // No runtime directory (systemd would empty /run/warden, runc's state) and no
    // private mount namespace (it would hide the containers' mounts).
    for (const k of ['RuntimeDirectory', 'PrivateTmp', 'ProtectSystem', 'ProtectHome', 'PrivateMounts', 'ReadOnlyPaths']) {
      expect(s.has(k), k).toBe(false);
    }
  });
});

describe('scripts/install and scripts/uninstall', () => {
  let t: string;
  let flags: string[];
  beforeAll(() => {
    t = mkdtempSync(join(tmpdir(), 'warden-install-'));
    flags = ['--prefix', join(t, 'opt/warden'), '--sysconfdir', join(t, 'etc/warden'), '--unitdir', join(t, 'units'), '--no-systemctl'];
  });
  afterAll(() => rmSync(t, { recursive: true, force: true }));

  it('installs a release, the links, a default config and the unit with those paths', async () => {
    const r = await run(join(ROOT, 'scripts/install'), flags);
    expect(r.code, r.stderr).toBe(0);
    const prefix = join(t, 'opt/warden');
    const releases = readdirSync(join(prefix, 'releases'));
    expect(releases).toHaveLength(1);
    expect(releases[0]).toMatch(/^\d+\.\d+\.\d+.*-[0-9a-f]{12}$/);
    expect(readlinkSync(join(prefix, 'current'))).toBe(`releases/${releases[0]}`);
    expect(readlinkSync(join(prefix, 'bin/warden-server'))).toBe('../current/bin/warden-server');
    // Production packages only (and Node itself).
    const modules = join(prefix, 'current/node_modules');
    expect(existsSync(join(modules, 'prom-client'))).toBe(true);
    expect(existsSync(join(modules, 'node'))).toBe(true);
    expect(existsSync(join(modules, 'vitest'))).toBe(false);
    expect(existsSync(join(modules, 'typescript'))).toBe(false);
    expect(existsSync(join(prefix, 'current/test'))).toBe(false);
    expect(readFileSync(join(t, 'etc/warden/warden.yml'), 'utf8')).toBe(readFileSync(join(ROOT, 'config/warden.yml'), 'utf8'));

    const unit = readFileSync(join(t, 'units/warden.service'), 'utf8');
    expect(unitSettings(unit).get('ExecStart')).toEqual([`${prefix}/current/bin/warden-server --config ${t}/etc/warden/warden.yml`]);
    // The installed unit verifies as it is: its programs exist.
    const verify = await run('systemd-analyze', ['verify', join(t, 'units/warden.service')]);
    expect(verify.stderr + verify.stdout).toBe('');
    expect(verify.code).toBe(0);
    // The installed build runs on its own node_modules.
    const check = await run(join(prefix, 'bin/warden-server'), ['--check-config', join(t, 'etc/warden/warden.yml')], t);
    expect(check.code, check.stderr).toBe(0);
    expect(check.stdout).toMatch(/^ {2}container_klass: Warden::Container::Linux$/m);
  });

  it('is idempotent and never overwrites a config', async () => {
    const config = join(t, 'etc/warden/warden.yml');
    writeFileSync(config, `${readFileSync(config, 'utf8')}# edited by the operator\n`);
    const unitBefore = lstatSync(join(t, 'units/warden.service')).mtimeMs;
    const r = await run(join(ROOT, 'scripts/install'), flags);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/is already in/);
    expect(r.stdout).toMatch(/keeping the config/);
    expect(readdirSync(join(t, 'opt/warden/releases'))).toHaveLength(1);
    expect(readFileSync(config, 'utf8')).toMatch(/# edited by the operator\n$/);
    expect(lstatSync(join(t, 'units/warden.service')).mtimeMs).toBe(unitBefore);
  });

  it('uninstall removes the daemon and the unit, keeps an edited config unless --purge', async () => {
    const r = await run(join(ROOT, 'scripts/uninstall'), flags);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(t, 'opt/warden'))).toBe(false);
    expect(existsSync(join(t, 'units/warden.service'))).toBe(false);
    expect(existsSync(join(t, 'etc/warden/warden.yml'))).toBe(true);
    const purge = await run(join(ROOT, 'scripts/uninstall'), [...flags, '--purge']);
    expect(purge.code, purge.stderr).toBe(0);
    expect(existsSync(join(t, 'etc/warden'))).toBe(false);
  });
});
