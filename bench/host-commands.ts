// What starting a host command costs a daemon-sized process: execa and a plain
// child_process.spawn from this process with a daemon-sized heap (the old way,
// from a worker), against the runner's spawner process (the new way), with the
// baseline of a spawn from a small process measured in the same run. Reports the
// latency per command and how long the calling thread was blocked (event-loop
// stalls), which is what a request waiting behind it pays. Then the CPU a
// command costs: the spawner process's own and its children's, against bash
// running the same command in a loop (its `times`), in the same run.
//
//   node bench/host-commands.ts [--heap-mib N] [--count N] [--concurrency N]
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { runHost } from '../src/host/run.ts';
import { cmdline, processSample } from './harness/proc.ts';

const { values } = parseArgs({
  options: {
    'heap-mib': { type: 'string', default: '400' },
    count: { type: 'string', default: '300' },
    concurrency: { type: 'string', default: '4' },
    baseline: { type: 'boolean', default: false },
  },
  strict: true,
});
const count = Number(values.count);
const concurrency = Number(values.concurrency);

function plainSpawn(): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn('/bin/true', [], { stdio: 'ignore', detached: true });
    p.once('error', reject);
    p.once('close', () => resolve());
  });
}

interface Figures {
  p50: number;
  perSecond: number;
  blockedMsPerCommand: number;
}

async function measure(run: () => Promise<unknown>): Promise<Figures> {
  for (let i = 0; i < 20; i++) await run();
  // The event loop's stalls: a 1 ms timer that fires late was blocked for the difference.
  let blocked = 0;
  let last = performance.now();
  const tick = setInterval(() => {
    const now = performance.now();
    blocked += Math.max(0, now - last - 1);
    last = now;
  }, 1);
  const times: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < count) {
        const s = performance.now();
        await run();
        times.push(performance.now() - s);
      }
    }),
  );
  const total = performance.now() - t0;
  clearInterval(tick);
  times.sort((a, b) => a - b);
  return { p50: times[Math.floor(times.length / 2)]!, perSecond: (count / total) * 1000, blockedMsPerCommand: blocked / count };
}

if (values.baseline) {
  // Child mode: a small process spawning directly (the baseline).
  process.stdout.write(JSON.stringify(await measure(plainSpawn)));
  process.exit(0);
}

const baseline = await new Promise<Figures>((resolve, reject) => {
  const p = spawn(process.execPath, [import.meta.filename, '--baseline', '--count', String(count), '--concurrency', String(concurrency)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  p.stdout.on('data', (c: Buffer) => (out += c));
  p.once('close', (code) => (code === 0 ? resolve(JSON.parse(out) as Figures) : reject(new Error(`baseline exited ${code}`))));
});

// A heap the size of a daemon's with a thousand containers.
const ballast: unknown[] = [];
for (let i = 0; i < Number(values['heap-mib']); i++) ballast.push(Buffer.alloc(1024 * 1024, i), Array.from({ length: 2000 }, (_, k) => ({ k })));

const rows: Array<[string, Figures]> = [
  ['execa, from this process', await measure(() => execa('/bin/true', [], { detached: true }))],
  ['child_process.spawn, from this process', await measure(plainSpawn)],
  ['runHost (spawner process)', await measure(() => runHost('/bin/true', [], { context: 'bench' }))],
];
const rss = Math.round(process.memoryUsage().rss / 2 ** 20);
console.log(`host commands: /bin/true x${count}, ${concurrency} at once; this process ${rss} MiB RSS; ${cpus().length} cores, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
console.log('| how | p50 | per second | thread blocked per command | p50 vs baseline |');
console.log('|---|--:|--:|--:|--:|');
const fmt = (name: string, f: Figures, ratio: string) =>
  console.log(`| ${name} | ${f.p50.toFixed(2)} ms | ${f.perSecond.toFixed(0)} | ${f.blockedMsPerCommand.toFixed(2)} ms | ${ratio} |`);
for (const [name, f] of rows) fmt(name, f, `${(f.p50 / baseline.p50).toFixed(2)}x`);
fmt('baseline: spawn from a small process', baseline, '1.00x');
ballast.length = 0;

// CPU per command. The spawner is this process's child running spawner-process.js.
async function spawnerPid(): Promise<number | undefined> {
  for (const tid of readdirSync('/proc/self/task')) {
    for (const pid of readFileSync(`/proc/self/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) {
      if ((await cmdline(Number(pid))).some((a) => a.endsWith('spawner-process.js'))) return Number(pid);
    }
  }
  return undefined;
}

const pid = await spawnerPid();
if (pid === undefined) throw new Error('cannot find the spawner process of this thread');
const before = await processSample(pid);
let left = count;
await Promise.all(Array.from({ length: concurrency }, async () => {
  while (left-- > 0) await runHost('/bin/true', [], { context: 'bench' });
}));
const after = await processSample(pid);
if (!before || !after) throw new Error(`cannot read /proc/${pid}`);
// bash's `times`: the shell's own user and system time, then its children's.
const seconds = execFileSync('bash', ['-c', `for ((i = 0; i < ${count}; i++)); do /bin/true; done; times`], { encoding: 'utf8' })
  .trim().split(/\s+/).map((t) => { const m = /^(\d+)m([\d.]+)s$/.exec(t); return m ? Number(m[1]) * 60 + Number(m[2]) : 0; });
const bashMs = (seconds.reduce((a, b) => a + b, 0) * 1000) / count;
const own = ((after.cpu - before.cpu) * 1000) / count;
const kids = ((after.childCpu - before.childCpu) * 1000) / count;
console.log(`\nCPU per command (/bin/true x${count}): the spawner ${own.toFixed(2)} ms + the command ${kids.toFixed(2)} ms = ${(own + kids).toFixed(2)} ms; ` +
  `bash running the same loop ${bashMs.toFixed(2)} ms (its own and the command's): ${((own + kids) / bashMs).toFixed(2)}x`);
