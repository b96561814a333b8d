// The spawner: a small long-lived Node process that starts host commands for the
// thread that started it. Forking the daemon itself costs ~17 ms of a blocked
// thread per command once its heap is a few hundred MiB (page tables are copied);
// forking this process costs ~1.5 ms. Orders come on stdin, reports go to stdout
// (src/host/spawner-wire.ts). It ends when its stdin closes: its thread is gone.
// Every command gets a session of its own (detached), so a signal for the
// daemon's process group never kills a half-done host operation.
// Plain JavaScript, so that Node does not load its TypeScript stripper (a
// WebAssembly module of ~17 MB) into each spawner: there is one per thread.
import { spawn } from 'node:child_process';
import { FrameReader, frame } from './spawner-wire.js';

const reader = new FrameReader();

/** @param {import('./spawner-wire.d.ts').SpawnReport} r */
function report(r) {
  process.stdout.write(frame(r));
}

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

/** @param {import('./spawner-wire.d.ts').SpawnOrder} o */
function start(o) {
  let child;
  const input = o.inputBase64 === undefined ? undefined : Buffer.from(o.inputBase64, 'base64');
  try {
    child = spawn(o.file, o.args, {
      cwd: o.cwd,
      env: o.env,
      detached: true,
      stdio: [input === undefined ? 'ignore' : 'pipe', o.stdout, o.stderr],
    });
  } catch (err) {
    report({ id: o.id, spawnError: err.message });
    return;
  }
  let settled = false;
  child.once('error', (err) => {
    if (settled) return;
    settled = true;
    report({ id: o.id, spawnError: err.message });
  });
  if (input !== undefined && child.stdin) {
    // A command that exits without reading its input must not take us down.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  }
  const out = new Collector(o.maxOutputBytes);
  const err = new Collector(o.maxOutputBytes);
  child.stdout?.on('data', (c) => out.add(c));
  child.stderr?.on('data', (c) => err.add(c));
  let timedOut = false;
  let killTimer;
  const timer =
    o.timeoutMs > 0
      ? setTimeout(() => {
          timedOut = true;
          child.kill('SIGTERM');
          killTimer = setTimeout(() => child.kill('SIGKILL'), o.killGraceMs);
        }, o.timeoutMs)
      : undefined;
  child.once('close', (exitCode, signal) => {
    clearTimeout(timer);
    clearTimeout(killTimer);
    if (settled) return;
    settled = true;
    report({
      id: o.id,
      pid: child.pid,
      exitCode,
      signal,
      stdout: out.text(),
      stderr: err.text(),
      truncated: out.truncated || err.truncated,
      timedOut,
    });
  });
}

process.stdin.on('data', (chunk) => {
  for (const order of reader.push(chunk)) start(order);
});
process.stdin.on('end', () => process.exit(0));
process.stdout.on('error', () => process.exit(0));
// Tell the thread we are ready (an order written before would wait in the pipe anyway).
report({ id: 0 });
