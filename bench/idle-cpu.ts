// The daemon's CPU use with N idle Linux containers (default 50) over 10 s, from
// /proc/PID/stat (utime + stime of every thread). Root; uses the test rootfs.
//   node bench/idle-cpu.ts [containers] [pool] [portStart] [uidStart]
import { readFile } from 'node:fs/promises';
import { LinuxDaemon, sleep } from '../test/support/linux/linux-daemon.ts';

const count = Number(process.argv[2] ?? 50);
const pool = process.argv[3] ?? '10.247.33.0/24';
const TICKS = 100; // USER_HZ

async function cpuTicks(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

const d = await LinuxDaemon.start({
  pool,
  portStart: Number(process.argv[4] ?? 33100),
  uidStart: Number(process.argv[5] ?? 45100),
  uidPoolSize: Math.max(64, count),
});
try {
  const client = await d.client();
  const queue = Array.from({ length: count }, (_, i) => i);
  await Promise.all(Array.from({ length: 4 }, async () => {
    for (let i = queue.shift(); i !== undefined; i = queue.shift()) await d.create(client);
  }));
  await sleep(3_000);
  const pid = d.daemon.proc!.pid!;
  const t0 = await cpuTicks(pid);
  const w0 = Date.now();
  await sleep(10_000);
  const used = (await cpuTicks(pid)) - t0;
  const secs = (Date.now() - w0) / 1000;
  console.log(JSON.stringify({ containers: count, seconds: secs, cpuSeconds: used / TICKS, cpuPercentOfOneCore: Math.round((used / TICKS / secs) * 1000) / 10 }));
} finally {
  const problems = await d.cleanup();
  if (problems.length) console.error('leaks:', problems);
}
