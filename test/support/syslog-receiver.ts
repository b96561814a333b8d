// A unix datagram syslog receiver for tests of log_tag forwarding (Node has no
// unix datagram sockets, so a few lines of python3): what it gets is appended,
// a message a line, to a file the test reads.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './wait.ts';

export class SyslogReceiver {
  readonly dir: string;
  /** The socket a daemon's server.syslog_socket names. */
  readonly socket: string;
  private readonly proc: ChildProcess;

  private constructor(dir: string, proc: ChildProcess) {
    this.dir = dir;
    this.socket = join(dir, 'log.sock');
    this.proc = proc;
  }

  static async start(): Promise<SyslogReceiver> {
    const dir = mkdtempSync(join(tmpdir(), 'warden-syslog-'));
    const proc = spawn('python3', [
      '-c',
      `import socket,sys
s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])
f=open(sys.argv[2],'ab',buffering=0)
while True: f.write(s.recv(65536)+b'\\n')`,
      join(dir, 'log.sock'),
      join(dir, 'received'),
    ]);
    const r = new SyslogReceiver(dir, proc);
    await waitFor('the syslog receiver', () => existsSync(r.socket));
    return r;
  }

  /** Everything received so far. */
  received(): string {
    const file = join(this.dir, 'received');
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  }

  stop(): void {
    this.proc.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
