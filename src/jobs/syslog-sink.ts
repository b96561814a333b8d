// Worker side of `log_tag`: a job's output lines go to the configured syslog
// socket tagged `warden.<log_tag>`, stdout at info and stderr at err. Node has
// no unix datagram sockets, so util-linux logger(1) does the sending, one
// process per stream for the job's life.
import { spawn, type ChildProcess } from 'node:child_process';

export interface SyslogTarget {
  socket: string;
  tag: string;
}

export class SyslogSink {
  private readonly procs = new Map<'stdout' | 'stderr', ChildProcess>();
  private readonly target: SyslogTarget;

  constructor(target: SyslogTarget) {
    this.target = target;
  }

  private proc(name: 'stdout' | 'stderr'): ChildProcess {
    let p = this.procs.get(name);
    if (!p) {
      const priority = name === 'stdout' ? 'user.info' : 'user.err';
      p = spawn(
        'logger',
        ['--socket', this.target.socket, '--socket-errors=off', '-t', `warden.${this.target.tag}`, '-p', priority],
        { stdio: ['pipe', 'ignore', 'ignore'], detached: true },
      );
      p.on('error', () => {});
      p.stdin!.on('error', () => {});
      this.procs.set(name, p);
    }
    return p;
  }

  /** Forward a chunk; resolves when logger has taken it (backpressure). */
  write(name: 'stdout' | 'stderr', data: Buffer): Promise<void> {
    const stdin = this.proc(name).stdin!;
    if (stdin.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      if (stdin.write(data)) resolve();
      else stdin.once('drain', resolve);
    });
  }

  /** End the logger processes after they sent what they have. */
  async close(): Promise<void> {
    await Promise.all(
      [...this.procs.values()].map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null) return resolve();
            p.once('exit', () => resolve());
            p.stdin!.end();
            setTimeout(() => {
              p.kill();
              resolve();
            }, 2000).unref();
          }),
      ),
    );
    this.procs.clear();
  }
}
