// Runs a raw baseline script (raw-linux.sh, raw-insecure.sh) and parses what it
// prints: one line per operation, `<op> <total_us> <step>=<us> ...`; `begin ID`
// and `end ID` around each container's life (the driver's cleanup list);
// `error <message>`; `note <text>`; and at the end `times` followed by the shell's `times`
// output, whose second line is the CPU of every process the script ran.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface RawOp {
  op: string;
  totalMs: number;
  steps: Record<string, number>;
  worker: number;
}

export interface RawRun {
  ops: RawOp[];
  /** CPU seconds of the scripts and every process they ran (user + sys). */
  cpuSeconds: number;
  errors: string[];
  ids: string[];
  /** Lines `note <text>`: what a script reports besides timings. */
  notes: string[];
}

/** "1m2.500s 0m0.100s" → 62.6 */
export function parseTimes(text: string): number {
  let total = 0;
  for (const m of text.matchAll(/(\d+)m([\d.]+)s/g)) total += Number(m[1]) * 60 + Number(m[2]);
  return total;
}

export interface ScriptHooks {
  onOp?: (op: RawOp) => void;
  onBegin?: (id: string) => void;
  onEnd?: (id: string) => void;
  signal?: AbortSignal;
  /** Running children are added here (killed by the driver's cleanup). */
  children?: Set<ChildProcess>;
}

export function runRawScript(script: string, args: string[], env: Record<string, string>, worker: number, h: ScriptHooks = {}): Promise<RawRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/bash', [script, ...args], {
      env: { ...process.env, ...env, LC_ALL: 'C' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    h.children?.add(child);
    const out: RawRun = { ops: [], cpuSeconds: 0, errors: [], ids: [], notes: [] };
    let timesNext = 0;
    let timesText = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const onAbort = () => child.kill('SIGTERM');
    h.signal?.addEventListener('abort', onAbort, { once: true });
    const rl = createInterface({ input: child.stdout });
    rl.on('line', (line) => {
      if (timesNext > 0) {
        // Two lines: the shell's own user/sys, then its children's.
        timesNext--;
        timesText += ` ${line}`;
        if (timesNext === 0) out.cpuSeconds = parseTimes(timesText);
        return;
      }
      if (line === 'times') {
        timesNext = 2;
        return;
      }
      const [op, ...rest] = line.split(' ');
      if (op === 'error') {
        out.errors.push(rest.join(' '));
      } else if (op === 'note') {
        out.notes.push(rest.join(' '));
      } else if (op === 'begin') {
        out.ids.push(rest[0]);
        h.onBegin?.(rest[0]);
      } else if (op === 'end') {
        h.onEnd?.(rest[0]);
      } else if (rest.length > 0 && /^\d+$/.test(rest[0])) {
        const steps: Record<string, number> = {};
        for (const kv of rest.slice(1)) {
          const [k, v] = kv.split('=');
          steps[k] = Number(v) / 1000;
        }
        const r: RawOp = { op, totalMs: Number(rest[0]) / 1000, steps, worker };
        out.ops.push(r);
        h.onOp?.(r);
      }
    });
    child.once('error', reject);
    child.once('close', (code) => {
      h.children?.delete(child);
      h.signal?.removeEventListener('abort', onAbort);
      const name = `${script.split('/').pop()} ${args[0]}`;
      if (code !== 0 && !h.signal?.aborted && out.errors.length === 0) {
        out.errors.push(`${name} exited with ${code}: ${stderr.trim().slice(-500)}`);
      } else if (stderr.trim() && !h.signal?.aborted) {
        // A step that complains on stderr (its own error lines capture what they expect)
        // did not do its work: the baseline would be cheaper than what it stands for.
        out.errors.push(`${name} wrote to stderr: ${stderr.trim().slice(-500)}`);
      }
      resolve(out);
    });
  });
}

export function mergeRuns(runs: RawRun[]): RawRun {
  return {
    ops: runs.flatMap((r) => r.ops),
    cpuSeconds: runs.reduce((a, r) => a + r.cpuSeconds, 0),
    errors: runs.flatMap((r) => r.errors),
    ids: runs.flatMap((r) => r.ids),
    notes: runs.flatMap((r) => r.notes),
  };
}
