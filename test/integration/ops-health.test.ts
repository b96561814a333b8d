// The health-check port of the real daemon (insecure backend): /healthz while serving
// and while draining, the plain answer old checkers get, /metrics as Prometheus text
// whose figures follow the requests, and /containers (bulk Info).
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { ROOT, TestDaemon } from '../support/daemon.ts';
import { waitFor } from '../support/wait.ts';


interface HttpReply {
  status: number;
  headers: Record<string, string>;
  body: string;
  raw: string;
}

/** One exchange on the health port: send `request` (nothing at all when empty), read to the close. */
function exchange(port: number | string, request: string, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    // A number: the TCP port on loopback; a string: a unix socket path.
    const s = typeof port === 'number' ? net.connect({ host: '127.0.0.1', port }) : net.connect({ path: port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    s.on('connect', () => request && s.write(request));
    s.on('data', (d) => chunks.push(d));
    s.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

async function http(port: number | string, path: string, method = 'GET'): Promise<HttpReply> {
  const raw = await exchange(port, `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n`);
  const split = raw.indexOf('\r\n\r\n');
  const [statusLine, ...lines] = raw.slice(0, split).split('\r\n');
  const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
  return { status: Number(statusLine!.split(' ')[1]), headers, body: raw.slice(split + 4), raw };
}

// ---- a strict reader of the Prometheus text format (0.0.4) --------------------------

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface Family {
  type: string;
  help: string;
  samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)(?: (-?\\d+))?$`);
const LABEL = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/;
const SUFFIXES: Record<string, string[]> = { histogram: ['_bucket', '_sum', '_count'], summary: ['', '_sum', '_count'] };

function parseValue(s: string): number {
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  // NaN is valid exposition text, but no figure of ours is ever not a number.
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) throw new Error(`bad value ${s}`);
  return Number(s);
}

/** Parses exposition text; throws on anything Prometheus would reject (and on a few things it merely should). */
function parsePrometheus(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  const familyOf = (name: string): Family | undefined => {
    if (families.has(name)) return families.get(name);
    for (const [fname, f] of families) if ((SUFFIXES[f.type] ?? []).some((x) => name === fname + x)) return f;
    return undefined;
  };
  for (const [i, line] of text.split('\n').entries()) {
    const where = `line ${i + 1}: ${line}`;
    if (line === '') continue;
    let m: RegExpExecArray | null;
    if ((m = new RegExp(`^# HELP (${NAME}) (.*)$`).exec(line))) {
      const f = families.get(m[1]!) ?? { type: 'untyped', help: '', samples: [] };
      f.help = m[2]!;
      families.set(m[1]!, f);
      continue;
    }
    if ((m = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`).exec(line))) {
      const f = families.get(m[1]!) ?? { type: 'untyped', help: '', samples: [] };
      if (f.samples.length > 0) throw new Error(`TYPE after samples, ${where}`);
      f.type = m[2]!;
      families.set(m[1]!, f);
      continue;
    }
    if (line.startsWith('#')) continue;
    m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a sample, ${where}`);
    const labels: Record<string, string> = {};
    let rest = m[2] ?? '';
    while (rest !== '') {
      const l = LABEL.exec(rest);
      if (!l) throw new Error(`bad labels, ${where}`);
      if (Object.hasOwn(labels, l[1]!)) throw new Error(`repeated label, ${where}`);
      labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
      rest = rest.slice(l[0].length);
    }
    const key = `${m[1]}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seen.has(key)) throw new Error(`duplicate series, ${where}`);
    seen.add(key);
    const f = familyOf(m[1]!);
    if (!f) throw new Error(`sample without TYPE, ${where}`);
    f.samples.push({ name: m[1]!, labels, value: parseValue(m[3]!) });
  }
  // Histograms: cumulative buckets, +Inf equal to _count, per label set.
  for (const [name, f] of families) {
    if (f.type !== 'histogram') continue;
    const series = new Map<string, Sample[]>();
    for (const s of f.samples) {
      const { le, ...rest } = s.labels;
      const k = JSON.stringify(Object.entries(rest).sort());
      series.set(k, [...(series.get(k) ?? []), s]);
    }
    for (const [k, samples] of series) {
      const buckets = samples.filter((s) => s.name === `${name}_bucket`);
      let prev = -Infinity;
      let prevCount = 0;
      for (const b of buckets) {
        const le = parseValue(b.labels.le!);
        if (!(le > prev) || b.value < prevCount) throw new Error(`${name}${k}: buckets not cumulative`);
        prev = le;
        prevCount = b.value;
      }
      const count = samples.find((s) => s.name === `${name}_count`)?.value;
      if (prev !== Infinity || count !== prevCount) throw new Error(`${name}${k}: +Inf bucket ${prevCount} != count ${count}`);
    }
  }
  return families;
}

function value(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value;
    }
  }
  return undefined;
}

async function scrape(port: number): Promise<Map<string, Family>> {
  const r = await http(port, '/metrics');
  expect(r.status).toBe(200);
  expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheus(r.body);
}

// ---------------------------------------------------------------------------------------

describe('health-check port while serving', () => {
  let d: TestDaemon;
  let port: number;
  /** health_check_server.unix_domain_path: /containers is served there, not on the TCP port. */
  let sock: string;
  let sockDir: string;

  beforeAll(async () => {
    sockDir = mkdtempSync(join(tmpdir(), 'warden-health-'));
    sock = join(sockDir, 'health.sock');
    d = await TestDaemon.start({ health: { unix_domain_path: sock } });
    port = d.healthPort;
  });
  afterAll(async () => {
    await d?.cleanup();
    rmSync(sockDir, { recursive: true, force: true });
  });

  it('the TCP port (any local user) does not list containers; the root-only unix socket does', async () => {
    const c = await d.client();
    const { handle } = await c.create({});
    try {
      // /containers on TCP is an unknown path there: the plain answer, no handles.
      const tcp = await http(port, '/containers');
      expect(tcp.body).toBe('ok\n');
      expect(tcp.raw).not.toContain(handle);
      expect((await http(port, '/metrics')).body).not.toContain(handle);
      expect(statSync(sock).mode & 0o777).toBe(0o600);
      const viaSocket = await http(sock, '/containers');
      expect(viaSocket.status).toBe(200);
      expect(Object.keys(JSON.parse(viaSocket.body))).toContain(handle);
      expect((await http(sock, '/healthz')).body).toBe('ok\n');
    } finally {
      await c.destroy({ handle });
      await c.close();
    }
  });

  it('/healthz answers 200 ok; HEAD has no body; other methods get 405', async () => {
    const r = await http(port, '/healthz');
    expect(r.status).toBe(200);
    expect(r.body).toBe('ok\n');
    expect(r.headers.connection).toBe('close');
    const head = await http(port, '/healthz', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    expect((await http(port, '/healthz', 'POST')).status).toBe(405);
  });

  it('old checkers still get HTTP/1.1 200 OK: a silent connection, any bytes, any other path', async () => {
    // A silent checker is answered without sending anything: were the daemon to wait
    // for a request instead, it would close the connection unanswered at its idle
    // timeout (10 s), which this wait (8 s) would not even reach.
    expect(await exchange(port, '', 8_000)).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nok\n$/);
    expect(await exchange(port, 'hello\n')).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect((await http(port, '/')).raw).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*ok\n$/);
    // A checker that shuts its side down at once.
    const halfClosed = await new Promise<string>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => s.end());
      const chunks: Buffer[] = [];
      s.on('data', (b) => chunks.push(b));
      s.on('close', () => resolve(Buffer.concat(chunks).toString()));
      s.on('error', reject);
    });
    expect(halfClosed).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
  });

  it('/metrics is Prometheus text with every family the operations guide lists', async () => {
    const m = await scrape(port);
    for (const name of [
      'warden_build_info', 'warden_draining', 'warden_connections', 'warden_containers', 'warden_containers_max',
      'warden_jobs_running', 'warden_pool_size', 'warden_pool_free', 'warden_pool_cooling', 'warden_worker_threads',
      'warden_worker_queue_size', 'warden_worker_utilization', 'warden_requests_total', 'warden_request_duration_seconds',
      'warden_oom_events_total', 'warden_destroy_failures_total', 'warden_create_refusals_total',
      'nodejs_eventloop_lag_seconds', 'nodejs_eventloop_lag_p99_seconds', 'process_open_fds', 'process_resident_memory_bytes',
    ]) {
      expect(m.has(name), name).toBe(true);
      expect(m.get(name)!.help, name).not.toBe('');
    }
    expect(m.get('warden_requests_total')!.type).toBe('counter');
    expect(m.get('warden_request_duration_seconds')!.type).toBe('histogram');
    const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;
    expect(value(m, 'warden_build_info', { version, backend: 'insecure' })).toBe(1);
    expect(value(m, 'warden_draining')).toBe(0);
    expect(value(m, 'warden_worker_threads')).toBe(2);
    for (const pool of ['network', 'uid', 'port']) {
      expect(value(m, 'warden_pool_size', { pool })).toBeGreaterThan(0);
      expect(value(m, 'warden_pool_free', { pool })).toBeLessThanOrEqual(value(m, 'warden_pool_size', { pool })!);
    }
  });

  it('scrapes right after one another report only numbers (no NaN event-loop figures)', async () => {
    // A scrape within the event-loop sampling resolution of the one before saw no
    // samples: prom-client reported their mean and stddev as `Nan`.
    // Two at once: both are computed in one turn of the event loop. (More at once
    // on a loaded host would have some wait past the plain-answer delay.)
    for (let round = 0; round < 10; round++) {
      const bodies = await Promise.all(Array.from({ length: 2 }, () => http(port, '/metrics')));
      for (const r of bodies) {
        const m = parsePrometheus(r.body);
        for (const f of m.values()) for (const s of f.samples) expect(Number.isNaN(s.value), s.name).toBe(false);
        expect(value(m, 'nodejs_eventloop_lag_mean_seconds')).toBeGreaterThanOrEqual(0);
      }
    }
  });

  it('counters and gauges follow the requests', async () => {
    const before = await scrape(port);
    const c = await d.client();
    for (let i = 0; i < 5; i++) await c.ping();
    for (let i = 0; i < 2; i++) await expect(c.info({ handle: 'no-such-handle' })).rejects.toThrow(/unknown handle/);
    const a = await c.create({});
    const b = await c.create({});
    const { job_id } = await c.spawn({ handle: a.handle, script: 'sleep 30' });
    const after = await scrape(port);

    const delta = (name: string, labels: Record<string, string>) => (value(after, name, labels) ?? 0) - (value(before, name, labels) ?? 0);
    expect(delta('warden_requests_total', { type: 'Ping', outcome: 'ok' })).toBe(5);
    expect(delta('warden_request_duration_seconds_count', { type: 'Ping', outcome: 'ok' })).toBe(5);
    expect(delta('warden_request_duration_seconds_bucket', { type: 'Ping', outcome: 'ok', le: '+Inf' })).toBe(5);
    expect(delta('warden_requests_total', { type: 'Info', outcome: 'error' })).toBe(2);
    expect(delta('warden_requests_total', { type: 'Create', outcome: 'ok' })).toBe(2);
    expect(delta('warden_request_duration_seconds_sum', { type: 'Create', outcome: 'ok' })).toBeGreaterThan(0);
    expect(value(after, 'warden_containers', { state: 'active' })).toBe((value(before, 'warden_containers', { state: 'active' }) ?? 0) + 2);
    expect(value(after, 'warden_jobs_running')).toBe((value(before, 'warden_jobs_running') ?? 0) + 1);
    for (const pool of ['network', 'uid']) expect(delta('warden_pool_free', { pool })).toBe(-2);
    expect(value(after, 'warden_connections')).toBeGreaterThanOrEqual(1);

    // /containers: every container's Info, as BulkInfo; unknown handles get an error entry.
    const all = await http(sock, '/containers');
    expect(all.status).toBe(200);
    expect(all.headers['content-type']).toBe('application/json');
    const bulk = JSON.parse(all.body) as Record<string, { info?: { state: string; container_ip: string; job_ids: number[] }; error?: string }>;
    expect(Object.keys(bulk).sort()).toEqual([a.handle, b.handle].sort());
    expect(bulk[a.handle]!.info!.state).toBe('active');
    expect(bulk[a.handle]!.info!.job_ids).toEqual([job_id]);
    expect(bulk[b.handle]!.info!.container_ip).toBe((await c.info({ handle: b.handle })).container_ip);
    const some = JSON.parse((await http(sock, `/containers?handle=${b.handle}&handles=nope`)).body);
    expect(some).toEqual({ [b.handle]: { info: expect.objectContaining({ state: 'active' }) }, nope: { error: 'unknown handle' } });

    await c.stop({ handle: a.handle, kill: true });
    await c.destroy({ handle: b.handle });
    const later = await scrape(port);
    expect(value(later, 'warden_containers', { state: 'stopped' })).toBe(1);
    expect(value(later, 'warden_jobs_running')).toBe(value(before, 'warden_jobs_running') ?? 0);
    // b's network waits out network.release_delay (5 s by default) before reuse.
    expect(value(later, 'warden_pool_cooling', { pool: 'network' })).toBe((value(before, 'warden_pool_cooling', { pool: 'network' }) ?? 0) + 1);
    await c.close();
  });

  it('polling /containers does not hold off a grace time', async () => {
    const c = await d.client();
    const { handle } = await c.create({ grace_time: 1 });
    await c.close();
    // The timeout is a failure bound for a 1 s grace time, not a measurement.
    await waitFor('the container to go after its grace time while /containers is polled', async () => {
      const bulk = JSON.parse((await http(sock, '/containers')).body);
      return !Object.hasOwn(bulk, handle);
    }, 30_000, 100);
  });
});

describe('metrics of a daemon that has just started', () => {
  it('count the requests answered before the metrics were loaded (they load once it serves)', async () => {
    const d = await TestDaemon.start();
    try {
      const c = await d.client();
      for (let i = 0; i < 4; i++) await c.call('Echo', { message: `early ${i}` });
      await expect(c.info({ handle: 'nope' })).rejects.toThrow('unknown handle');
      await c.close();
      const m = await scrape(d.healthPort);
      expect(value(m, 'warden_requests_total', { type: 'Echo', outcome: 'ok' })).toBe(4);
      expect(value(m, 'warden_requests_total', { type: 'Info', outcome: 'error' })).toBe(1);
    } finally {
      await d.cleanup();
    }
  });
});

describe('health_check_server.containers_on_tcp', () => {
  it('true serves /containers on the TCP port as well', async () => {
    const d = await TestDaemon.start({ health: { containers_on_tcp: true } });
    try {
      const c = await d.client();
      const { handle } = await c.create({});
      const r = await http(d.healthPort, '/containers');
      expect(r.status).toBe(200);
      expect(Object.keys(JSON.parse(r.body))).toEqual([handle]);
      await c.destroy({ handle });
      await c.close();
    } finally {
      await d.cleanup();
    }
  });
});

describe('health-check port while draining', () => {
  it('/healthz answers 503 from the drain signal until the exit; the plain answer stays 200', async () => {
    const d = await TestDaemon.start();
    const port = d.healthPort;
    try {
      const c = await d.client();
      const { handle } = await c.create({});
      // A job that answers TERM by saying so and then holds on until the test lets it
      // go keeps a graceful Stop busy for as long as the test needs: a request in
      // progress, which the drain lets finish.
      const marks = mkdtempSync(join(tmpdir(), 'warden-drain-'));
      onTestFinished(() => rmSync(marks, { recursive: true, force: true }));
      const termed = join(marks, 'termed');
      const release = join(marks, 'release');
      const trapped = join(marks, 'trapped');
      await c.spawn({ handle, script: `trap 'touch ${termed}' TERM; touch ${trapped}; while [ ! -e ${release} ]; do sleep 0.05; done` });
      // A Stop that came before the shell had set its trap would end it at once (the
      // default action of TERM), and nothing would say so: the job says when it is ready.
      await waitFor('the job to set its TERM trap', () => existsSync(trapped));
      const k = await d.client();
      const stopping = k.stop({ handle });
      await waitFor('the Stop to signal the job', () => existsSync(termed));
      expect((await http(port, '/healthz')).status).toBe(200);

      const exited = d.drain();
      await waitFor('/healthz to answer 503 while the Stop is still in progress', async () => (await http(port, '/healthz')).status === 503, 10_000, 20);
      expect(existsSync(release)).toBe(false);
      expect((await http(port, '/healthz')).body).toBe('draining\n');
      expect(await exchange(port, '')).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      const m = await scrape(port);
      expect(value(m, 'warden_draining')).toBe(1);

      writeFileSync(release, '');
      await expect(stopping).resolves.toEqual({});
      expect(await exited).toBe(0);
      await expect(http(port, '/healthz')).rejects.toThrow(/ECONNREFUSED/);
      await c.close().catch(() => {});
      await k.close().catch(() => {});
    } finally {
      // The container (stopped, no process left) goes with the folder.
      await d.cleanup();
    }
  });
});
