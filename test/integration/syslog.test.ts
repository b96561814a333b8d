// log_tag: job output lines reach the configured syslog socket, tagged.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TestDaemon } from '../support/daemon.ts';
import { SyslogReceiver } from '../support/syslog-receiver.ts';

let syslog: SyslogReceiver;
let d: TestDaemon;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  syslog = await SyslogReceiver.start();
  d = await TestDaemon.start({ server: { syslog_socket: syslog.socket } });
});

afterAll(async () => {
  await d?.cleanup();
  syslog?.stop();
});

it('sends stdout at info and stderr at err, tagged warden.<log_tag>', async () => {
  const c = await d.client();
  const { handle } = await c.create({});
  const r = await c.run({ handle, script: 'echo out-line; echo err-line >&2', log_tag: 'app7' });
  expect(r.exit_status).toBe(0);
  let got = '';
  for (let i = 0; i < 100 && !(got.includes('out-line') && got.includes('err-line')); i++) {
    await sleep(50);
    got = syslog.received();
  }
  const lines = got.split('\n');
  const out = lines.find((l) => l.includes('out-line'))!;
  const err = lines.find((l) => l.includes('err-line'))!;
  // <PRI> = facility user (1) * 8 + severity: info 6 → 14, err 3 → 11.
  expect(out).toMatch(/^<14>.*warden\.app7.*out-line/);
  expect(err).toMatch(/^<11>.*warden\.app7.*err-line/);
  // Without a log_tag nothing is sent.
  await c.run({ handle, script: 'echo untagged' });
  await sleep(300);
  expect(syslog.received()).not.toContain('untagged');
  await c.destroy({ handle });
  await c.close();
});

it('a job that outlives a restart: each line reaches syslog exactly once, before and after the restart', async () => {
  const d1 = await TestDaemon.start({ server: { syslog_socket: syslog.socket } });
  let d2: TestDaemon | undefined;
  try {
    const c1 = await d1.client();
    const { handle } = await c1.create({});
    const N = 80;
    const { job_id } = await c1.spawn({
      handle,
      script: `for i in $(seq 1 ${N}); do echo "across-$i"; echo "across-err-$i" >&2; sleep 0.05; done`,
      log_tag: 'restart7',
    });
    const received = () => syslog.received();
    for (let i = 0; i < 200 && !received().includes('across-5\n'); i++) await sleep(25);
    expect(received()).toContain('across-5\n');
    expect(await d1.drain()).toBe(0);
    d2 = await TestDaemon.start({ dir: d1.dir });
    const c2 = await d2.client();
    // Linking waits for the job's end; the watcher forwards the tail meanwhile.
    expect((await c2.link({ handle, job_id })).exit_status).toBe(0);
    for (let i = 0; i < 200 && !(received().includes(`across-${N}\n`) && received().includes(`across-err-${N}\n`)); i++) await sleep(25);
    const lines = received().split('\n').filter((l) => l.includes('warden.restart7'));
    for (let i = 1; i <= N; i++) {
      expect(lines.filter((l) => l.endsWith(`: across-${i}`)).length, `across-${i}`).toBe(1);
      expect(lines.filter((l) => l.endsWith(`: across-err-${i}`)).length, `across-err-${i}`).toBe(1);
    }
    expect(lines.length).toBe(2 * N);
    await c2.destroy({ handle });
    await c2.close();
  } finally {
    await d2?.cleanup();
    await d1.cleanup();
  }
}, 60_000);
