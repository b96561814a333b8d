// The spawner: a small long-lived Node process that starts host commands for the
// daemon's threads. Forking the daemon itself costs ~17 ms of a blocked thread per
// command once its heap is a few hundred MiB (page tables are copied); forking this
// process costs ~1.5 ms. Orders come on stdin, reports go to stdout
// (src/host/spawner-wire.ts). It ends when its stdin closes: whoever started it is gone.
// With `--listen PATH` it also takes orders on a unix socket at PATH (in a folder
// only the daemon's user can enter), each connection's reports going back on it:
// the daemon starts one first thing, and its worker threads connect to it (see
// spawner.ts). At the end it removes PATH and its folder.
// Every command gets a session of its own (detached), so a signal for the
// daemon's process group never kills a half-done host operation.
// Plain JavaScript, so that Node does not load its TypeScript stripper (a
// WebAssembly module of ~17 MB) into the spawner.
import { spawn } from 'node:child_process';
import { accessSync, constants, readFileSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname } from 'node:path';
import { FrameReader, JOIN_CGROUP_FAILED, frame } from './spawner-wire.js';

/** @typedef {(r: import('./spawner-wire.d.ts').SpawnReport) => void} Reply */

/** Collects a stream up to max bytes, remembering whether it had more. */
class Collector {
  /** @type {Buffer[]} */
  chunks = [];
  bytes = 0;
  truncated = false;
  /** @param {number} max */
  constructor(max) {
    this.max = max;
  }
  /** @param {Buffer} chunk */
  add(chunk) {
    const room = this.max - this.bytes;
    if (room <= 0) {
      this.truncated = true;
      return;
    }
    const kept = chunk.length > room ? chunk.subarray(0, room) : chunk;
    if (kept !== chunk) this.truncated = true;
    this.chunks.push(kept);
    this.bytes += kept.length;
  }
  text() {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/**
 * Where each bare command name was found on its PATH, as a shell's hash table keeps
 * it: libuv's exec tried every PATH entry before it, one failed execve each (seven a
 * command with the PATH of a login shell here). '' when it was not found (the bare
 * name is then passed on, and the exec searches). Forgotten when the file is gone.
 * @type {Map<string, string>}
 */
const located = new Map();

/** @param {string} file @param {Record<string, string>} env */
function locate(file, env) {
  const path = env.PATH ?? '';
  const dirs = path.split(':');
  // A name with a slash is a path; a relative PATH entry depends on the cwd: leave both to exec.
  if (file.includes('/') || dirs.some((d) => !d.startsWith('/'))) return { file, key: undefined };
  const key = `${path}\0${file}`;
  let found = located.get(key);
  if (found === undefined) {
    found = '';
    for (const dir of dirs) {
      const candidate = `${dir}/${file}`;
      try {
        if (!statSync(candidate).isFile()) continue;
        accessSync(candidate, constants.X_OK);
        found = candidate;
        break;
      } catch {
        // not here
      }
    }
    located.set(key, found);
  }
  return { file: found || file, key };
}

/**
 * Starts one command; `done` settles (never rejects) when it has ended and its
 * output streams are closed, or at once when it could not be started.
 * @param {{ file: string, args: string[], cwd?: string, env: Record<string, string> }} c
 * @param {Array<'pipe' | 'ignore'>} stdio
 * @param {number} maxOutputBytes
 * @param {boolean} [feedsPipe] its stdout goes to a pipeline's second command: not collected
 */
function launch(c, stdio, maxOutputBytes, feedsPipe = false) {
  /** @type {import('node:child_process').ChildProcess | undefined} */
  let child;
  const where = locate(c.file, c.env);
  try {
    // argv[0] stays the name asked for (multi-call tools such as iptables go by it).
    child = spawn(where.file, c.args, { cwd: c.cwd, env: c.env, detached: true, stdio, argv0: c.file });
  } catch (err) {
    if (where.key !== undefined) located.delete(where.key);
    return { child: undefined, done: Promise.resolve({ spawnError: err.message }) };
  }
  const out = new Collector(maxOutputBytes);
  const err = new Collector(maxOutputBytes);
  if (!feedsPipe) child.stdout?.on('data', (b) => out.add(b));
  child.stderr?.on('data', (b) => err.add(b));
  /** @type {Promise<import('./spawner-wire.d.ts').CommandReport>} */
  const done = new Promise((resolve) => {
    let settled = false;
    child.once('error', (e) => {
      if (where.key !== undefined) located.delete(where.key);
      if (settled) return;
      settled = true;
      resolve({ spawnError: e.message });
    });
    child.once('close', (exitCode, signal) => {
      if (settled) return;
      settled = true;
      resolve({
        pid: child.pid, exitCode, signal, stdout: out.text(), stderr: err.text(), truncated: out.truncated || err.truncated,
      });
    });
  });
  return { child, done };
}

/** Whether the process has not been seen to end yet. */
function running(child) {
  return child !== undefined && child.exitCode === null && child.signalCode === null;
}

/**
 * TERM after timeoutMs, KILL killGraceMs later, for every still-running child.
 * @param {import('./spawner-wire.d.ts').SpawnOrder} o
 * @param {Array<import('node:child_process').ChildProcess | undefined>} children
 */
function deadline(o, children) {
  const state = { timedOut: false, timer: undefined, killTimer: undefined };
  if (o.timeoutMs > 0) {
    state.timer = setTimeout(() => {
      state.timedOut = true;
      for (const c of children) if (running(c)) c.kill('SIGTERM');
      state.killTimer = setTimeout(() => {
        for (const c of children) if (running(c)) c.kill('SIGKILL');
      }, o.killGraceMs);
    }, o.timeoutMs);
  }
  state.clear = () => {
    clearTimeout(state.timer);
    clearTimeout(state.killTimer);
  };
  return state;
}

/** The environment a starter itself runs with (its supervisors get their orders'). */
const STARTER_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
/**
 * Orders one starter takes before the next order goes to a fresh one: bash keeps
 * every background child it started in lists it searches on each fork (about half a
 * KiB and a slower fork per job: 4 ms an order at first, 11 ms after 1,000).
 */
const STARTER_ORDERS = 256;

/**
 * A fork server in bash (SpawnOrder.starter, e.g. job-starter.sh) that this process
 * keeps running and hands orders to, instead of forking itself and starting a fresh
 * shell for each. Orders go in as a length line and \x01-ended fields, answers come back as
 * "SEQ STATUS PID" lines. Started on the first order, in a session of its own; if
 * it dies, the orders it had fail and the next order starts another.
 */
class Starter {
  /** @type {Map<number, (r: import('./spawner-wire.d.ts').CommandReport & { unavailable?: boolean }) => void>} */
  pending = new Map();
  seq = 0;
  partial = '';
  /** Its orders have been failed: it ended. */
  gone = false;
  /** Takes no more orders (its quota is used, or it exited). */
  retired = false;

  /** @param {string} script */
  constructor(script) {
    this.script = script;
    this.child = spawn('/bin/bash', [script], {
      cwd: '/', env: { PATH: STARTER_PATH }, detached: true, stdio: ['pipe', 'pipe', 'ignore'],
    });
    this.child.stdin.on('error', () => undefined);
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (text) => this.answers(text));
    const end = (why, unavailable) => {
      if (this.gone) return;
      this.gone = true;
      if (starters.get(script) === this) starters.delete(script);
      for (const resolve of this.pending.values()) resolve({ spawnError: `job starter ${why}`, unavailable });
      this.pending.clear();
    };
    this.child.once('error', (e) => end(`could not start: ${e.message}`, true));
    // Once it has exited no order may go to it (its stdout may close later, when the
    // last supervisor it forked lets go of it); the orders it had fail on 'close',
    // once the answers still in the pipe are read.
    this.child.once('exit', () => this.retire());
    this.child.once('close', (code, signal) => end(`exited (${signal ?? code})`, false));
  }

  /**
   * No more orders: it reads those already written, answers them and ends once its
   * input is closed; the next order starts a fresh one.
   */
  retire() {
    if (starters.get(this.script) === this) starters.delete(this.script);
    this.retired = true;
  }

  /** @param {string} text */
  answers(text) {
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) {
      const [seq, status, pid] = line.split(' ').map(Number);
      const resolve = this.pending.get(seq);
      if (!resolve) continue;
      this.pending.delete(seq);
      resolve({ pid, exitCode: status, signal: null, stdout: '', stderr: '', truncated: false });
    }
  }

  /**
   * @param {import('./spawner-wire.d.ts').SpawnOrder} o
   * @returns {Promise<import('./spawner-wire.d.ts').CommandReport & { timedOut?: boolean, unavailable?: boolean }>}
   */
  start(o) {
    const seq = ++this.seq;
    if (seq >= STARTER_ORDERS) this.retire();
    const env = Object.entries(o.env).map(([k, v]) => `${k}=${v}`);
    const fields = [String(seq), o.cwd ?? '/', String(env.length), ...env, String(o.args.length), ...o.args];
    const body = Buffer.from(fields.map((f) => `${f}\x01`).join(''));
    return new Promise((resolve) => {
      let timer;
      this.pending.set(seq, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
      if (o.timeoutMs > 0) {
        timer = setTimeout(() => {
          if (this.pending.delete(seq)) resolve({ timedOut: true, exitCode: null, signal: null });
        }, o.timeoutMs);
      }
      this.child.stdin.write(Buffer.concat([Buffer.from(`${body.length}\n`), body]));
      if (this.retired) this.child.stdin.end();
    });
  }
}

/** @type {Map<string, Starter>} */
const starters = new Map();

/**
 * Whether a starter may take the order: a plain command of the starter's own
 * shell (no input, output ignored) whose environment a shell holds as it is given:
 * PATH and WARDEN_* names only (a shell would read others, IFS or SHELLOPTS say, as
 * settings of its own), no NUL or \x01 (the starter's field end) anywhere. Others are spawned as usual.
 * @param {import('./spawner-wire.d.ts').SpawnOrder} o
 */
function forStarter(o) {
  if (typeof o.starter !== 'string' || o.pipeTo || o.inputBase64 !== undefined) return false;
  if (o.file !== '/bin/bash' || o.stdout !== 'ignore' || o.stderr !== 'ignore') return false;
  const names = Object.keys(o.env);
  if (!names.includes('PATH') || !names.every((k) => k === 'PATH' || (k.startsWith('WARDEN_') && IDENTIFIER.test(k)))) return false;
  return ![o.cwd ?? '', ...o.args, ...Object.values(o.env)].some((f) => f.includes('\0') || f.includes('\x01'));
}

/**
 * Whether this process is in the cgroup of a cgroup.procs file (its pid is listed
 * there). Remembered once seen: nothing moves a spawner into another group later
 * (the daemon moves only itself; at its exit it moves what is in its own group out,
 * which at worst makes a remembered "no" cost a wrapper that was not needed).
 * @type {Map<string, boolean>}
 */
const memberOf = new Map();

/** @param {string} procs */
function inCgroup(procs) {
  let known = memberOf.get(procs);
  if (known === undefined) {
    try {
      known = readFileSync(procs, 'utf8').split('\n').includes(String(process.pid));
    } catch {
      known = false;
    }
    memberOf.set(procs, known);
  }
  return known;
}

/**
 * The order as it is when this process is in the cgroup it must start from (or it
 * names none), else its command behind a shell that moves into that cgroup first.
 * @param {import('./spawner-wire.d.ts').SpawnOrder} o
 */
function inItsCgroup(o) {
  if (o.joinCgroup === undefined || inCgroup(o.joinCgroup)) return o;
  const move = `echo $$ > "$0" || exit ${JOIN_CGROUP_FAILED}; exec "$@"`;
  return { ...o, file: '/bin/sh', args: ['-c', move, o.joinCgroup, o.file, ...o.args] };
}

/** @param {import('./spawner-wire.d.ts').SpawnOrder} o @param {Reply} report */
async function start(o, report) {
  o = inItsCgroup(o);
  if (o.pipeTo) return startPipeline(o, report);
  if (forStarter(o)) {
    let starter = starters.get(o.starter);
    if (!starter) starters.set(o.starter, (starter = new Starter(o.starter)));
    const { unavailable, ...r } = await starter.start(o);
    // A starter that could not start at all: the order goes the usual way.
    if (!unavailable) return report({ id: o.id, ...r });
  }
  const input = o.inputBase64 === undefined ? undefined : Buffer.from(o.inputBase64, 'base64');
  const { child, done } = launch(o, [input === undefined ? 'ignore' : 'pipe', o.stdout, o.stderr], o.maxOutputBytes);
  if (input !== undefined && child?.stdin) {
    // A command that exits without reading its input must not take us down.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  }
  const limit = deadline(o, [child]);
  const r = await done;
  limit.clear();
  report({ id: o.id, ...r, ...(limit.timedOut ? { timedOut: true } : {}) });
}

/**
 * source | sink, the bytes through this process with backpressure. Once the sink
 * has ended, what the source still writes is read and dropped, so that a source
 * never blocks on a pipe nobody reads; if it goes on for sourceGraceMs it is killed.
 * @param {import('./spawner-wire.d.ts').SpawnOrder} o
 * @param {Reply} report
 */
async function startPipeline(o, report) {
  const p = /** @type {import('./spawner-wire.d.ts').PipeOrder} */ (o.pipeTo);
  const sink = launch(p, ['pipe', p.stdout, p.stderr], o.maxOutputBytes);
  const source = launch(o, ['ignore', 'pipe', 'pipe'], o.maxOutputBytes, true);
  const from = source.child?.stdout;
  const into = sink.child?.stdin;
  into?.on('error', () => undefined);
  if (from && into) from.pipe(into);
  else {
    // One side could not start: the other gets EOF, or has its output dropped.
    into?.end();
    from?.resume();
  }
  const limit = deadline(o, [source.child, sink.child]);
  let stoppedAfterGrace = false;
  let graceTimer;
  // However the source ended (a failed start emits no 'end'), the sink then gets EOF
  // once what was read is written.
  void source.done.then(() => {
    if (into && !into.writableEnded) into.end();
  });
  const sinkReport = await sink.done;
  if (from) {
    from.unpipe();
    from.resume();
  }
  if (running(source.child)) {
    graceTimer = setTimeout(() => {
      if (!running(source.child)) return;
      stoppedAfterGrace = true;
      source.child.kill('SIGKILL');
    }, o.sourceGraceMs ?? 0);
  }
  const sourceReport = await source.done;
  clearTimeout(graceTimer);
  limit.clear();
  report({
    id: o.id, ...sourceReport, pipeTo: sinkReport,
    ...(limit.timedOut ? { timedOut: true } : {}), ...(stoppedAfterGrace ? { stoppedAfterGrace: true } : {}),
  });
}

/** Reads orders from one byte stream and starts them, replying through reply. @param {Reply} reply */
function orderReader(reply) {
  const reader = new FrameReader();
  /** @param {Buffer} chunk */
  return (chunk) => {
    for (const order of reader.push(chunk)) void start(order, reply);
  };
}

const listenAt = process.argv.indexOf('--listen') > 0 ? process.argv[process.argv.indexOf('--listen') + 1] : undefined;

function exit() {
  if (listenAt) {
    // The socket, then its folder if that is now empty: nothing else is ours to remove.
    try {
      unlinkSync(listenAt);
      rmdirSync(dirname(listenAt));
    } catch {
      // already gone, or the folder holds something else
    }
  }
  process.exit(0);
}

process.stdin.on('data', orderReader((r) => process.stdout.write(frame(r))));
process.stdin.on('end', exit);
process.stdout.on('error', exit);
if (listenAt) {
  const server = createServer((conn) => {
    // A connection that goes away takes only its own replies with it.
    conn.on('error', () => undefined);
    conn.on('data', orderReader((r) => {
      if (conn.writable) conn.write(frame(r));
    }));
  });
  server.on('error', (err) => {
    process.stderr.write(`warden spawner: cannot listen on ${listenAt}: ${err.message}\n`);
    exit();
  });
  // The hello says the socket is ready: threads connect only after it.
  server.listen(listenAt, () => process.stdout.write(frame({ id: 0 })));
} else {
  // Tell the thread we are ready (an order written before would wait in the pipe anyway).
  process.stdout.write(frame({ id: 0 }));
}
