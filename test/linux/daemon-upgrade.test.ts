// Zero-loss upgrade (docs/operations.md, "Upgrade"), Linux backend: containers run
// jobs, clients stream and link them, ports are mapped and limits set; the daemon
// drains (SIGUSR2, what `systemctl stop/restart warden` sends) and a new build,
// installed by scripts/install into a release folder of its own, starts on the same
// config and depot. The old daemon is an older build of this repository (the one
// before the newest change to src/, from a git worktree), so a change of the snapshot
// format or of what a container leaves on the host is caught. Every container, job, port mapping and limit is there, and Link
// and Stream return the jobs' full output. Nothing is left on the host afterwards.
// Pool 10.245.6.0/24, host ports 24700-24799, uids 37000-37063.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InfoResponse } from '../../src/protocol/types.ts';
import { ROOT } from '../support/daemon.ts';
import { checkoutOldBuild, type OldBuild } from '../support/old-build.ts';
import { LinuxDaemon, processAlive, tcpExchange, waitFor, waitListening } from '../support/linux/linux-daemon.ts';

const N = 4;
const LINES = 40;
const MiB = 1024 * 1024;
const RATE = 1024 * 1024;
const BURST = 64 * 1024;

interface Box {
  handle: string;
  id: string;
  before: InfoResponse;
  hostPort: number;
  listener: number;
  job: number;
  memory: number;
  shares: number;
}

let d: LinuxDaemon;
let prefix: string;
let boxes: Box[] = [];
let oldPid: number;
let old: OldBuild | undefined;

const expected = (h: string) => Array.from({ length: LINES }, (_, i) => `${h} line ${i + 1}\n`).join('');
const script = (h: string) => `for i in $(seq 1 ${LINES}); do echo "${h} line $i"; sleep 0.1; done; echo done >&2; exit 3`;

function sh(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { maxBuffer: 16 * MiB }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, out: `${stdout}${stderr}` }),
    );
  });
}

function http(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`));
    const chunks: Buffer[] = [];
    s.on('data', (b) => chunks.push(b));
    s.on('close', () => {
      const raw = Buffer.concat(chunks).toString();
      resolve({ status: Number(raw.split(' ')[1]), body: raw.slice(raw.indexOf('\r\n\r\n') + 4) });
    });
    s.on('error', reject);
  });
}

const metric = (text: string, series: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

beforeAll(async () => {
  const t = mkdtempSync(join(tmpdir(), 'warden-upgrade-'));
  prefix = join(t, 'opt/warden');
  // The new build: this tree installed as a release of its own (production packages only).
  const install = await sh(join(ROOT, 'scripts/install'), [
    '--prefix', prefix, '--sysconfdir', join(t, 'etc'), '--unitdir', join(t, 'units'), '--no-systemctl',
  ]);
  expect(install.code, install.out).toBe(0);
  // The old build: checked out from history, its own warden-server started.
  old = await checkoutOldBuild();
  // /containers on the TCP port: an operator's choice (health_check_server.containers_on_tcp).
  d = await LinuxDaemon.start({ pool: '10.245.6.0/24', portStart: 24700, uidStart: 37000, health: { containers_on_tcp: true }, bin: old.bin });
}, 180_000);

afterAll(async () => {
  try {
    const problems = d ? await d.cleanup() : [];
    expect(problems).toEqual([]);
  } finally {
    if (prefix) rmSync(join(prefix, '../..'), { recursive: true, force: true });
    await old?.remove();
  }
}, 300_000);

describe('upgrade: drain, then a new build on the same depot', () => {
  const streams: Promise<{ text: string; outcome: string }>[] = [];
  const links: Promise<string>[] = [];

  it('the old daemon is the old build, whose src/ differs from this tree\'s', async () => {
    const cmdline = readFileSync(`/proc/${d.daemon.pid}/cmdline`, 'utf8').split('\0');
    expect(cmdline).toContain(old!.entry);
    expect((await sh('git', ['-C', ROOT, 'diff', '--quiet', old!.rev, '--', 'src'])).code).toBe(1);
  });

  it(`sets up ${N} containers with jobs, net_in, limits, and clients streaming and linking`, async () => {
    const c = await d.client();
    for (let i = 0; i < N; i++) {
      const { handle, id } = await d.create(c);
      await c.spawn({ handle, script: `exec nc -ll -p 8080 -e echo pong-${i}` });
      const listener = (await c.info({ handle })).job_ids![0]!;
      const { host_port } = await c.netIn({ handle, container_port: 8080 });
      const memory = (64 + 16 * i) * MiB;
      const shares = 128 * (i + 1);
      await c.limitMemory({ handle, limit_in_bytes: memory });
      await c.limitCpu({ handle, limit_in_shares: shares });
      await c.limitBandwidth({ handle, rate: RATE, burst: BURST });
      await c.limitDisk({ handle, byte_limit: 50 * MiB });
      const before = await c.info({ handle });
      boxes.push({ handle, id, before, hostPort: host_port, listener, job: 0, memory, shares });
    }
    for (const b of boxes) {
      await waitListening(await d.initPid(b.before.container_path!), 8080);
      expect((await tcpExchange('127.0.0.1', b.hostPort, '', 3_000)).data.toString()).toBe(`pong-${boxes.indexOf(b)}\n`);
      b.job = (await c.spawn({ handle: b.handle, script: script(b.handle) })).job_id;
    }
    // Half the jobs have a client streaming, half one linking, each on its own connection.
    for (const [i, b] of boxes.entries()) {
      const k = await d.client();
      if (i % 2 === 0) {
        streams.push(
          (async () => {
            let text = '';
            try {
              for await (const frame of k.stream({ handle: b.handle, job_id: b.job })) if (frame.name === 'stdout') text += String(frame.data);
              return { text, outcome: 'ended' };
            } catch (err) {
              return { text, outcome: `closed: ${(err as Error).message}` };
            }
          })(),
        );
      } else {
        links.push(k.link({ handle: b.handle, job_id: b.job }).then(() => 'answered', (err: Error) => `closed: ${err.message}`));
      }
    }
    // Drain once the jobs are mid-way.
    await waitFor('every job to print a few lines', async () => {
      const outs = await Promise.all(
        boxes.map((b) => readFile(join(b.before.container_path!, 'jobs', String(b.job), 'stdout'), 'utf8').catch(() => '')),
      );
      return outs.every((o) => o.includes(' line 3\n'));
    });
    const m = (await http(d.daemon.healthPort, '/metrics')).body;
    expect(metric(m, 'warden_containers{state="active"}')).toBe(N);
    expect(metric(m, 'warden_jobs_running')).toBe(2 * N);
    oldPid = d.daemon.pid;

    expect(await d.daemon.drain()).toBe(0);
    // The waiting clients were disconnected, having streamed part of the output.
    const streamed = await Promise.all(streams);
    for (const s of streamed) {
      expect(s.outcome).toMatch(/^closed/);
      expect(s.text.length).toBeGreaterThan(0);
    }
    for (const l of await Promise.all(links)) expect(l).toMatch(/^closed/);
  }, 180_000);

  it('the containers live on while no daemon runs', async () => {
    expect(await processAlive(oldPid)).toBe(false);
    for (const b of boxes) {
      expect(await processAlive(await d.initPid(b.before.container_path!))).toBe(true);
      expect((await tcpExchange('127.0.0.1', b.hostPort, '', 3_000)).data.toString()).toBe(`pong-${boxes.indexOf(b)}\n`);
    }
  });

  it('the new build serves the same depot', async () => {
    await d.closeClients();
    const newBin = join(prefix, 'bin/warden-server');
    await d.daemon.launch(newBin);
    // It runs from the installed release, not from this checkout, and from the bundle built into it.
    const release = readlinkSync(join(prefix, 'current'));
    const cmdline = readFileSync(`/proc/${d.daemon.pid}/cmdline`, 'utf8').split('\0');
    expect(cmdline.some((a) => a === join(prefix, release, 'dist/main.js'))).toBe(true);
    expect((await http(d.daemon.healthPort, '/healthz')).status).toBe(200);
    const c = await d.client();
    expect(((await c.list()).handles ?? []).sort()).toEqual(boxes.map((b) => b.handle).sort());
  }, 120_000);

  it('every job: Stream and Link return the full output and the exit status', async () => {
    const results = await Promise.all(
      boxes.map(async (b, i) => {
        const k = await d.client();
        if (i % 2 === 0) {
          let out = '';
          let err = '';
          let status: number | undefined;
          for await (const f of k.stream({ handle: b.handle, job_id: b.job })) {
            if (f.name === 'stdout') out += String(f.data);
            if (f.name === 'stderr') err += String(f.data);
            if (f.exit_status !== undefined) status = f.exit_status;
          }
          return { out, err, status };
        }
        const r = await k.link({ handle: b.handle, job_id: b.job });
        return { out: String(r.stdout), err: String(r.stderr), status: r.exit_status };
      }),
    );
    for (const [i, r] of results.entries()) {
      expect(r.out, boxes[i]!.handle).toBe(expected(boxes[i]!.handle));
      expect(r.err).toBe('done\n');
      expect(r.status).toBe(3);
    }
  }, 60_000);

  it('every container, port mapping and limit is there', async () => {
    const c = await d.client();
    for (const [i, b] of boxes.entries()) {
      const info = await c.info({ handle: b.handle });
      expect(info.state).toBe('active');
      for (const k of ['host_ip', 'container_ip', 'container_path'] as const) expect(info[k]).toBe(b.before[k]);
      expect(info.job_ids).toEqual([b.listener]);
      expect((await tcpExchange('127.0.0.1', b.hostPort, '', 3_000)).data.toString()).toBe(`pong-${i}\n`);
      expect(await c.limitMemory({ handle: b.handle })).toEqual({ limit_in_bytes: b.memory });
      expect(info.memory_stat?.hierarchical_memory_limit).toBe(b.memory);
      expect(await c.limitCpu({ handle: b.handle })).toEqual({ limit_in_shares: b.shares });
      expect(info.bandwidth_stat).toMatchObject({ in_rate: RATE, out_rate: RATE });
      expect(await c.limitDisk({ handle: b.handle })).toMatchObject({ byte_limit: 50 * MiB });
    }
    // The next job id is above every old one; the listener jobs still run.
    const { job_id } = await c.spawn({ handle: boxes[0]!.handle, script: 'echo new' });
    expect(job_id).toBeGreaterThan(Math.max(...boxes.map((b) => b.job)));
    expect(String((await c.link({ handle: boxes[0]!.handle, job_id })).stdout)).toBe('new\n');
    const m = (await http(d.daemon.healthPort, '/metrics')).body;
    expect(metric(m, 'warden_containers{state="active"}')).toBe(N);
    expect(metric(m, 'warden_jobs_running')).toBe(N);
    expect(metric(m, 'warden_pool_free{pool="port"}')).toBe(100 - N);
    const bulk = JSON.parse((await http(d.daemon.healthPort, '/containers')).body) as Record<string, { info?: InfoResponse }>;
    expect(Object.keys(bulk).sort()).toEqual(boxes.map((b) => b.handle).sort());
    for (const b of boxes) expect(bulk[b.handle]!.info!.memory_stat?.hierarchical_memory_limit).toBe(b.memory);
  }, 60_000);
});
