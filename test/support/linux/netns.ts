// Fake containers for network tests: a process holding a new network namespace
// (held by pid, never by a /run/netns name), commands and small TCP servers and
// clients run inside it, and a TCP client for the host side. Traffic only goes to
// loopback and to namespaces the tests created.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { execa } from 'execa';

export interface Netns {
  /** The namespace holder (unshare's child): use /proc/<pid>/ns/net. */
  pid: number;
  kill(): void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `unshare --net --fork sleep infinity`; resolves with the child that sits in the new namespace. */
export async function startNetns(): Promise<Netns> {
  const holder = spawn('unshare', ['--net', '--fork', 'sleep', 'infinity'], { stdio: 'ignore' });
  const parent = holder.pid;
  if (parent === undefined) throw new Error('unshare did not start');
  for (let i = 0; i < 200; i++) {
    const children = await readFile(`/proc/${parent}/task/${parent}/children`, 'utf8').catch(() => '');
    const pid = Number(children.trim().split(/\s+/)[0]);
    if (pid > 0) {
      return {
        pid,
        kill() {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {}
          holder.kill('SIGKILL');
        },
      };
    }
    await sleep(5);
  }
  holder.kill('SIGKILL');
  throw new Error('unshare child did not appear');
}

/** Runs argv inside the namespace; never rejects, check exitCode. */
export function inNetns(pid: number, argv: string[], timeoutMs = 10_000) {
  return execa('nsenter', [`--net=/proc/${pid}/ns/net`, '--', ...argv], { reject: false, timeout: timeoutMs });
}

// A server for tests, in plain JavaScript so any node runs it. One line per
// connection: "ping" -> "pong"; "send N" -> N bytes then close; "recv N" -> reads N
// bytes, answers "ok" and closes. Prints "listening" once every port listens.
const SERVER = `
const net = require('net');
const ports = process.argv.slice(1).map(Number);
let ready = 0;
for (const port of ports) {
  net.createServer((s) => {
    let head = Buffer.alloc(0), mode = '', need = 0, got = 0;
    s.on('error', () => {});
    s.on('data', (d) => {
      if (mode === 'recv') { got += d.length; if (got >= need) { mode = 'done'; s.end('ok\\n'); } return; }
      if (mode) return;
      head = Buffer.concat([head, d]);
      const nl = head.indexOf(10);
      if (nl < 0) return;
      const [cmd, n] = head.subarray(0, nl).toString().split(' ');
      const rest = head.length - nl - 1;
      if (cmd === 'ping') { mode = 'done'; s.end('pong\\n'); }
      else if (cmd === 'send') {
        mode = 'send';
        const total = Number(n), chunk = Buffer.alloc(65536, 120);
        let sent = 0;
        const pump = () => {
          while (sent < total) {
            const k = Math.min(chunk.length, total - sent);
            sent += k;
            if (!s.write(chunk.subarray(0, k))) { s.once('drain', pump); return; }
          }
          s.end();
        };
        pump();
      } else if (cmd === 'recv') {
        mode = 'recv'; need = Number(n); got = rest;
        if (got >= need) { mode = 'done'; s.end('ok\\n'); }
      } else s.destroy();
    });
  }).listen(port, '0.0.0.0', () => { if (++ready === ports.length) console.log('listening'); });
}
`;

const CLIENT = `
const net = require('net');
const [host, port] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port) });
const timer = setTimeout(() => { console.log('timeout'); process.exit(2); }, Number(process.argv[3] || 2000));
let out = '';
s.on('connect', () => s.write('ping\\n'));
s.on('data', (d) => { out += d; });
s.on('end', () => { clearTimeout(timer); console.log(out.trim()); process.exit(out.trim() === 'pong' ? 0 : 1); });
s.on('error', (e) => { clearTimeout(timer); console.log(e.code || e.message); process.exit(1); });
`;

export interface NsServer {
  stop(): void;
}

/** Starts the test server inside the namespace on the ports; resolves once it listens. */
export async function startServer(pid: number, ports: number[]): Promise<NsServer> {
  const child: ChildProcess = spawn('nsenter', [`--net=/proc/${pid}/ns/net`, '--', process.execPath, '-e', SERVER, ...ports.map(String)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not start')), 10_000);
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('listening')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}`));
    });
  });
  return { stop: () => void child.kill('SIGKILL') };
}

/** "ping" from inside the namespace to host:port: 'pong', or the error (ECONNREFUSED, timeout, ...). */
export async function pingFromNetns(pid: number, host: string, port: number, timeoutMs = 2000): Promise<string> {
  const r = await inNetns(pid, [process.execPath, '-e', CLIENT, host, String(port), String(timeoutMs)], timeoutMs + 5000);
  return r.stdout.trim() || `exit ${r.exitCode}: ${r.stderr}`;
}

/** "ping" from the host: 'pong' or the error code. */
export function pingFromHost(host: string, port: number, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    let out = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve('timeout');
    }, timeoutMs);
    s.on('connect', () => s.write('ping\n'));
    s.on('data', (d) => (out += d));
    s.on('end', () => {
      clearTimeout(timer);
      resolve(out.trim());
    });
    s.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(e.code ?? e.message);
    });
  });
}

/** Sends `bytes` from the host to the server at host:port; resolves with the rate in bytes/s. */
export function measureUpload(host: string, port: number, bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    let t0 = 0;
    let reply = '';
    s.on('connect', () => {
      s.write(`recv ${bytes}\n`);
      t0 = performance.now();
      const chunk = Buffer.alloc(65536, 121);
      let sent = 0;
      const pump = () => {
        while (sent < bytes) {
          const k = Math.min(chunk.length, bytes - sent);
          sent += k;
          if (!s.write(chunk.subarray(0, k))) return void s.once('drain', pump);
        }
      };
      pump();
    });
    s.on('data', (d) => (reply += d));
    s.on('end', () => (reply.trim() === 'ok' ? resolve(bytes / ((performance.now() - t0) / 1000)) : reject(new Error(`reply ${reply}`))));
    s.on('error', reject);
  });
}

/** Asks the server at host:port for `bytes`; resolves with the rate in bytes/s. */
export function measureDownload(host: string, port: number, bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    let got = 0;
    let t0 = 0;
    s.on('connect', () => {
      t0 = performance.now();
      s.write(`send ${bytes}\n`);
    });
    s.on('data', (d) => (got += d.length));
    s.on('end', () => (got === bytes ? resolve(bytes / ((performance.now() - t0) / 1000)) : reject(new Error(`got ${got} of ${bytes} bytes`))));
    s.on('error', reject);
  });
}

/** busybox ping, one echo request. */
export async function icmpPing(fromPid: number | undefined, ip: string): Promise<boolean> {
  const argv = ['busybox', 'ping', '-c', '1', '-W', '1', ip];
  const r = fromPid === undefined ? await execa(argv[0]!, argv.slice(1), { reject: false }) : await inNetns(fromPid, argv);
  return r.exitCode === 0;
}
