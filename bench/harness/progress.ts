// A live progress bar per phase on stderr. On a terminal it redraws one line
// (at most 10 times a second); otherwise (CI, a log file) it prints a line at
// every 10% so the log stays short.
import { formatDuration } from '../lib/format.ts';

const WIDTH = 28;

export class Progress {
  private readonly tty = process.stderr.isTTY === true;
  private label = '';
  private total = 0;
  private done = 0;
  private errors = 0;
  private started = 0;
  private lastDraw = 0;
  private lastDecile = -1;
  private extra = '';
  private active = false;
  /** Quiet: no output at all (tests). */
  quiet = false;

  /** Starts a phase; total 0 means unknown (time-bound phases pass their duration in ms with timeBound). */
  start(label: string, total: number, opts: { timeBoundMs?: number } = {}): void {
    this.finishLine();
    this.label = label;
    this.total = total;
    this.done = 0;
    this.errors = 0;
    this.started = performance.now();
    this.lastDecile = -1;
    this.timeBoundMs = opts.timeBoundMs;
    this.extra = '';
    this.active = true;
    this.draw(true);
  }

  private timeBoundMs: number | undefined;

  tick(n = 1, failed = false): void {
    this.done += n;
    if (failed) this.errors += n;
    this.draw(false);
  }

  /** Text shown after the counters (e.g. "live 4,012  rss 310 MiB"). */
  note(text: string): void {
    this.extra = text;
    this.draw(false);
  }

  end(summary?: string): void {
    if (!this.active) return;
    this.draw(true);
    this.finishLine();
    if (summary && !this.quiet) process.stderr.write(`  ${summary}\n`);
  }

  /** Prints a line above the bar. */
  log(line: string): void {
    if (this.quiet) return;
    if (this.tty && this.active) process.stderr.write('\r\x1b[2K');
    process.stderr.write(`${line}\n`);
    if (this.active) this.draw(true);
  }

  private fraction(): number {
    const elapsed = performance.now() - this.started;
    if (this.total > 0) return Math.min(1, this.done / this.total);
    if (this.timeBoundMs) return Math.min(1, elapsed / this.timeBoundMs);
    return 0;
  }

  private line(): string {
    const f = this.fraction();
    const filled = Math.round(f * WIDTH);
    const bar = '█'.repeat(filled) + '░'.repeat(WIDTH - filled);
    const elapsed = performance.now() - this.started;
    const rate = elapsed > 0 ? (this.done * 1000) / elapsed : 0;
    const count = this.total > 0 ? `${this.done.toLocaleString('en-US')}/${this.total.toLocaleString('en-US')}` : this.done.toLocaleString('en-US');
    const eta = f > 0.02 && f < 1 ? `  eta ${formatDuration(((1 - f) * elapsed) / f)}` : '';
    const errs = this.errors ? `  errors ${this.errors}` : '';
    return `${this.label.padEnd(30)} ${bar} ${(f * 100).toFixed(0).padStart(3)}%  ${count}  ${rate.toFixed(rate < 10 ? 1 : 0)}/s${eta}${errs}${this.extra ? `  ${this.extra}` : ''}`;
  }

  private draw(force: boolean): void {
    if (this.quiet || !this.active) return;
    const now = performance.now();
    if (this.tty) {
      if (!force && now - this.lastDraw < 100) return;
      this.lastDraw = now;
      const cols = process.stderr.columns || 120;
      process.stderr.write(`\r\x1b[2K${this.line().slice(0, cols - 1)}`);
      return;
    }
    const decile = Math.floor(this.fraction() * 10);
    if (decile > this.lastDecile || (force && decile === 10)) {
      this.lastDecile = decile;
      process.stderr.write(`${this.line()}\n`);
    }
  }

  private finishLine(): void {
    if (this.active && this.tty && !this.quiet) process.stderr.write('\n');
    this.active = false;
  }
}
