// Crash and restart through the real daemon (Linux backend):
// 1. 100 containers alive, kill -9 during creates, a container's init killed while the
//    daemon is down; the next daemon on the same depot recovers every whole container,
//    destroys the half-made ones and the one without an init, and frees what they held.
// 2. A drain (SIGUSR2) while 20 containers run jobs that print over ~2 s; the next
//    daemon links every job with its full output and status, and keeps net_in ports,
//    memory limits and events.
// Pool 10.246.0.0/22 (256 containers), host ports 24600-24699.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { LinuxDaemon, processAlive, tcpExchange, waitFor } from '../support/linux/linux-daemon.ts';
import type { WardenClient } from '../../src/client/client.ts';

const COUNT = 100;
const CLIENTS = 4;
const MiB = 1024 * 1024;
let d: LinuxDaemon;
/** Handles (= ids) of the containers that must survive. */
let whole: string[] = [];

beforeAll(async () => {
  d = await LinuxDaemon.start({ pool: '10.246.0.0/22', portStart: 24600, uidStart: 36000, uidPoolSize: 256 });
});

afterAll(async () => {
  const t0 = performance.now();
  const problems = d ? await d.cleanup() : [];
  console.log(`cleanup (destroy all, stop, unmount): ${(performance.now() - t0).toFixed(0)} ms`);
  expect(problems).toEqual([]);
}, 300_000);

/** Runs fn over items with n connections at once. */
async function withClients<T, R>(items: T[], n: number, fn: (c: WardenClient, item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      const c = await d.daemon.client();
      try {
        for (let i = next++; i < items.length; i = next++) out[i] = await fn(c, items[i]!);
      } finally {
        await c.close();
      }
    }),
  );
  return out;
}

async function list(): Promise<string[]> {
  const c = await d.daemon.client();
  try {
    return ((await c.list()).handles ?? []).sort();
  } finally {
    await c.close();
  }
}

/** Where a start (launched at `since`, epoch ms) spent its time, from the daemon's log. */
function startPhases(since: number): string {
  const lines = d.daemon
    .log()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { time: number; msg: string; ms?: Record<string, number> })
    .filter((l) => l.time >= since);
  const at = (msg: string) => (lines.find((l) => l.msg === msg)?.time ?? NaN) - since;
  const destroyed = lines.filter((l) => l.msg === 'recovery: destroying container').length;
  const phases = JSON.stringify(lines.find((l) => l.msg === 'recovery done')?.ms ?? {});
  // (Later lines may not be flushed yet: the daemon logs asynchronously.)
  return `recovery done +${at('recovery done')} ms after launch (${destroyed} destroyed; ms per phase ${phases})`;
}

async function hostTraces(id: string): Promise<string[]> {
  const found: string[] = [];
  if (await stat(`/sys/class/net/w-${id}-0`).catch(() => undefined)) found.push('interface');
  if (await stat(join(d.settings.depot, id)).catch(() => undefined)) found.push('folder');
  for (const dir of new Set(Object.values(await d.cgroups(id)))) if (await stat(dir).catch(() => undefined)) found.push(`cgroup ${dir}`);
  const ipt = await execa('iptables', ['-w', '-S'], { reject: false });
  if (ipt.stdout.includes(`warden-i-${id}`)) found.push('iptables chain');
  if ((await readFile('/proc/self/mountinfo', 'utf8')).includes(`/${id}/mnt `)) found.push('mount');
  return found;
}

describe('kill -9 during creates, with 100 containers alive', () => {
  let inFlight: string[] = [];
  let completedInFlight: string[] = [];
  let noInit: string;

  it(`creates ${COUNT} containers with ${CLIENTS} clients`, async () => {
    const t0 = performance.now();
    whole = await withClients(Array.from({ length: COUNT }, (_, i) => i), CLIENTS, async (c) => (await c.create()).handle);
    const ms = performance.now() - t0;
    console.log(`created ${COUNT} containers in ${ms.toFixed(0)} ms (${(ms / COUNT).toFixed(0)} ms each with ${CLIENTS} clients)`);
    for (const h of whole) d.ids.add(h);
    expect(new Set(whole).size).toBe(COUNT);
    expect(await list()).toEqual([...whole].sort());
  }, 300_000);

  it('kill -9 while 6 more creates are under way', async () => {
    const before = new Set(await readdir(d.settings.depot));
    const creates = Array.from({ length: 6 }, async () => {
      const c = await d.daemon.client();
      return c.create().then(
        (r) => r.handle,
        () => undefined,
      );
    });
    // Once three new container folders exist, the creates are at different stages.
    await waitFor('creates to start', async () => (await readdir(d.settings.depot)).filter((n) => !before.has(n) && !n.startsWith('.')).length >= 3, 10_000, 2);
    expect(await d.daemon.kill9()).toBeNull();
    await Promise.all(creates);
    inFlight = (await readdir(d.settings.depot)).filter((n) => !before.has(n) && !n.startsWith('.'));
    for (const id of inFlight) d.ids.add(id);
    // Whole (snapshot active) in-flight creates must come back; the rest must go.
    for (const id of inFlight) {
      const snap = await readFile(join(d.settings.depot, id, 'snapshot.json'), 'utf8').then(JSON.parse, () => undefined);
      if (snap?.state === 'active') completedInFlight.push(id);
    }
    console.log(`killed with ${inFlight.length} creates in flight, ${completedInFlight.length} of them complete`);
    expect(inFlight.length).toBeGreaterThan(0);
  });

  it('a container whose init dies while the daemon is down is destroyed at restart', async () => {
    noInit = whole.pop()!;
    const pid = await d.initPid(join(d.settings.depot, noInit));
    process.kill(pid, 'SIGKILL');
    await waitFor('the init to die', async () => !(await processAlive(pid)));

    const t0 = performance.now();
    const since = Date.now();
    await d.restart();
    console.log(`restart with ${COUNT + inFlight.length} containers in the depot: ${(performance.now() - t0).toFixed(0)} ms; ${startPhases(since)}`);
    expect(await list()).toEqual([...whole, ...completedInFlight].sort());
    expect(await hostTraces(noInit)).toEqual([]);
  }, 120_000);

  it('destroys the half-made ones and leaves nothing of them', async () => {
    for (const id of inFlight.filter((i) => !completedInFlight.includes(i))) expect(await hostTraces(id), id).toEqual([]);
  });

  it('the recovered containers work', async () => {
    const sample = [whole[0]!, whole[37]!, whole[whole.length - 1]!, ...completedInFlight];
    const out = await withClients(sample, 4, async (c, handle) => {
      const r = await c.run({ handle, script: 'echo ok; hostname' });
      return `${r.exit_status} ${String(r.stdout).split('\n')[0]}`;
    });
    expect(out).toEqual(sample.map(() => '0 ok'));
    // Host traces of a recovered container are all there (nothing swept by mistake).
    const traces = await hostTraces(whole[1]!);
    expect(traces).toEqual(expect.arrayContaining(['interface', 'folder', 'iptables chain', 'mount']));
  });
});

describe('drain with 20 containers running jobs, then a new daemon', () => {
  const N = 20;
  const LINES = 20;
  let boxes: { handle: string; job: number }[] = [];
  let ports: { handle: string; hostPort: number }[] = [];
  let limited: string[] = [];
  let oomed: string;
  let shaped: string; // bandwidth, disk and cpu limits and a net_out rule
  const expected = (handle: string) => Array.from({ length: LINES }, (_, i) => `${handle} line ${i + 1}\n`).join('');

  it('sets up jobs, net_in, limits and an OOM event, then drains while the jobs run', async () => {
    const handles = whole.slice(0, N);
    ports = [];
    limited = handles.slice(5, 8);
    oomed = handles[8]!;
    shaped = handles[9]!;
    await withClients(handles.slice(0, 3), 3, async (c, handle) => {
      await c.spawn({ handle, script: 'exec nc -ll -p 8080 -e echo pong' });
      const r = await c.netIn({ handle, container_port: 8080 });
      ports.push({ handle, hostPort: r.host_port });
    });
    await withClients(limited, 3, (c, handle) => c.limitMemory({ handle, limit_in_bytes: 100 * MiB }));
    const k = await d.client();
    await k.limitBandwidth({ handle: shaped, rate: 200_000, burst: 20_000 });
    await k.limitDisk({ handle: shaped, byte_limit: 50 * MiB });
    await k.limitCpu({ handle: shaped, limit_in_shares: 300 });
    await k.netOut({ handle: shaped, network: '10.246.3.252/30', port: 4242 });
    await k.limitMemory({ handle: oomed, limit_in_bytes: 32 * MiB });
    expect((await k.run({ handle: oomed, script: 'exec dd if=/dev/zero of=/dev/null bs=64M count=1' })).exit_status).toBe(255);
    await waitFor('the OOM stop', async () => (await k.info({ handle: oomed })).state === 'stopped', 5_000);
    for (const { hostPort } of ports) {
      await waitFor('net_in to answer', async () => (await tcpExchange('127.0.0.1', hostPort, '', 2_000)).data.toString() === 'pong\n');
    }

    const script = (h: string) => `for i in $(seq 1 ${LINES}); do echo "${h} line $i"; sleep 0.1; done; echo done >&2; exit 7`;
    const jobHandles = handles.filter((h) => h !== oomed);
    boxes = await withClients(jobHandles, 4, async (c, handle) => ({ handle, job: (await c.spawn({ handle, script: script(handle) })).job_id }));
    // Drain once every job has printed something: they are mid-way.
    const info = await k.info({ handle: jobHandles[0]! });
    await waitFor('the jobs to start printing', async () => {
      const s = await readFile(join(info.container_path!, 'jobs', String(boxes[0]!.job), 'stdout'), 'utf8').catch(() => '');
      return s.includes('line 2');
    });
    const t0 = performance.now();
    expect(await d.daemon.drain()).toBe(0);
    console.log(`drain: ${(performance.now() - t0).toFixed(0)} ms`);
  }, 120_000);

  it('a new daemon links every job with its full output and status', async () => {
    const t0 = performance.now();
    const since = Date.now();
    await d.restart();
    console.log(`restart after drain: ${(performance.now() - t0).toFixed(0)} ms; ${startPhases(since)}`);
    const [first, ...rest] = boxes;
    // One by Stream, the rest by Link, several at once.
    const c = await d.client();
    let streamed = '';
    let status: number | undefined;
    for await (const frame of c.stream({ handle: first!.handle, job_id: first!.job })) {
      if (frame.name === 'stdout') streamed += String(frame.data);
      if (frame.exit_status !== undefined) status = frame.exit_status;
    }
    expect(streamed).toBe(expected(first!.handle));
    expect(status).toBe(7);
    const linked = await withClients(rest, 6, (k, b) => k.link({ handle: b.handle, job_id: b.job }));
    for (const [i, r] of linked.entries()) {
      expect(String(r.stdout), rest[i]!.handle).toBe(expected(rest[i]!.handle));
      expect(String(r.stderr)).toBe('done\n');
      expect(r.exit_status).toBe(7);
    }
    // Job ids go on above the old ones.
    const { job_id } = await c.spawn({ handle: first!.handle, script: 'true' });
    expect(job_id).toBeGreaterThan(Math.max(...boxes.map((b) => b.job)));
  }, 120_000);

  it('keeps net_in ports, memory limits and events', async () => {
    for (const { hostPort } of ports) {
      expect((await tcpExchange('127.0.0.1', hostPort, '', 3_000)).data.toString()).toBe('pong\n');
    }
    const c = await d.client();
    for (const handle of limited) {
      expect((await c.info({ handle })).memory_stat?.hierarchical_memory_limit).toBe(100 * MiB);
      expect(await c.limitMemory({ handle })).toEqual({ limit_in_bytes: 100 * MiB });
    }
    // Bandwidth (tc), disk (qgroup), cpu (cgroup) and net_out (iptables) of another container.
    const id = shaped; // generated handles are the ids
    expect((await c.info({ handle: shaped })).bandwidth_stat).toMatchObject({ in_rate: 200_000, out_rate: 200_000 });
    expect((await execa('tc', ['qdisc', 'show', 'dev', `w-${id}-0`])).stdout).toMatch(/tbf .*rate 1600Kbit/);
    expect(await c.limitDisk({ handle: shaped })).toMatchObject({ byte_limit: 50 * MiB });
    expect(await c.limitCpu({ handle: shaped })).toEqual({ limit_in_shares: 300 });
    expect((await execa('iptables', ['-w', '-S', `warden-i-${id}`])).stdout).toContain('-d 10.246.3.252/30 -p tcp -m tcp --dport 4242 -j ACCEPT');
    // Containers without a limit have no shaping.
    expect((await execa('tc', ['qdisc', 'show', 'dev', `w-${whole[0]}-0`])).stdout).not.toMatch(/tbf/);

    const info = await c.info({ handle: oomed });
    expect(info.state).toBe('stopped');
    expect(info.events).toContain('out of memory');
    expect(info.memory_stat?.hierarchical_memory_limit).toBe(32 * MiB);
    // The limit is still enforced, not only reported.
    const free = whole[5]!;
    expect((await c.run({ handle: free, script: 'exec dd if=/dev/zero of=/dev/null bs=160M count=1' })).exit_status).toBe(255);
  });
});
