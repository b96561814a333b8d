// The daemon's logs (insecure backend): one info line per request with its type,
// handle, duration and outcome; SIGHUP reopens logging.file after logrotate moved it
// and re-reads logging.level, without a restart.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TestDaemon } from '../support/daemon.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Line {
  level: number;
  msg: string;
  [k: string]: unknown;
}

function lines(file: string): Line[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);
}

async function waitForLine(file: string, pred: (l: Line) => boolean, what: string): Promise<Line> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const found = lines(file).find(pred);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no log line ${what} in ${file}:\n${existsSync(file) ? readFileSync(file, 'utf8') : '(no file)'}`);
    await sleep(25);
  }
}

describe('logs', () => {
  // A daemon (and a log) per test: no test counts another's lines.
  let d: TestDaemon;
  beforeEach(async () => {
    d = await TestDaemon.start();
  });
  afterEach(async () => {
    await d?.cleanup();
  });

  it('writes one info line per request with handle, type, duration and outcome', async () => {
    const c = await d.client();
    const { handle } = await c.create({});
    await c.run({ handle, script: 'true' });
    await expect(c.info({ handle: 'missing' })).rejects.toThrow();
    await c.echo({ message: 'last' });
    const log = d.logPath;
    await waitForLine(log, (l) => l.type === 'Echo', 'for Echo');
    const requests = lines(log).filter((l) => l.msg === 'request' || l.msg === 'request failed');
    const create = requests.find((l) => l.type === 'Create')!;
    // The handle the daemon picked is on the Create line too.
    expect(create).toMatchObject({ level: 30, msg: 'request', type: 'Create', handle, outcome: 'ok' });
    expect(create.ms).toEqual(expect.any(Number));
    expect(requests.find((l) => l.type === 'Run')).toMatchObject({ level: 30, handle, outcome: 'ok' });
    expect(requests.find((l) => l.type === 'Info')).toMatchObject({
      level: 30, msg: 'request failed', handle: 'missing', outcome: 'error', err: 'unknown handle',
    });
    // Probes (Ping, Echo) that succeed log at debug; everything else at info.
    expect(requests.find((l) => l.type === 'Echo')).toMatchObject({ level: 20, outcome: 'ok' });
    for (const l of requests) expect(typeof l.ms).toBe('number');
    await c.close();
  });

  it('SIGHUP reopens logging.file after it was moved away (logrotate)', async () => {
    const c = await d.client();
    await c.echo({ message: 'before rotation' });
    await waitForLine(d.logPath, (l) => l.type === 'Echo', 'Echo before rotation');
    const rotated = `${d.logPath}.1`;
    renameSync(d.logPath, rotated);
    // Until the reopen, lines still go to the moved file (the daemon holds it open).
    await c.ping();
    await waitForLine(rotated, (l) => l.type === 'Ping', 'Ping in the rotated file');
    expect(existsSync(d.logPath)).toBe(false);

    d.proc!.kill('SIGHUP');
    await waitForLine(d.logPath, (l) => l.msg === 'log file reopened', 'reopened');
    await c.echo({ message: 'after rotation' });
    await waitForLine(d.logPath, (l) => l.type === 'Echo', 'Echo in the new file');
    expect(lines(rotated).some((l) => l.msg === 'log file reopened')).toBe(false);
    expect(lines(rotated).filter((l) => l.type === 'Echo')).toHaveLength(1);
    expect(lines(d.logPath).filter((l) => l.type === 'Echo')).toHaveLength(1);
    // Still the same daemon.
    expect(d.proc!.exitCode).toBe(null);
    await c.close();
  });

  it('SIGHUP re-reads logging.level; a broken config keeps the level and says so', async () => {
    const c = await d.client();
    const config = readFileSync(d.configPath, 'utf8');
    expect(config).toMatch(/^ {2}level: "debug"$/m);
    try {
      writeFileSync(d.configPath, config.replace(/^ {2}level: "debug"$/m, '  level: warn'));
      d.proc!.kill('SIGHUP');
      await waitForLine(d.logPath, (l) => l.msg === 'log level changed' && l.to === 'warn', 'level change to warn');
      await c.list();

      // Not a valid config: the level stays at warn, and the daemon says why.
      writeFileSync(d.configPath, config.replace(/^ {2}level: "debug"$/m, '  level: loud'));
      d.proc!.kill('SIGHUP');
      await waitForLine(d.logPath, (l) => /config not re-read/.test(l.msg) && /logging\.level must be one of/.test(String(l.err)), 'bad config warning');
      await c.list();

      writeFileSync(d.configPath, config.replace(/^ {2}level: "debug"$/m, '  level: info'));
      d.proc!.kill('SIGHUP');
      await waitForLine(d.logPath, (l) => l.msg === 'log level changed' && l.to === 'info', 'level change to info');
      await c.list();
      // List logs at info: the one at info is in the file. Lines are written in
      // order, so the two Lists under warn would be in by then: they are not.
      const lists = () => lines(d.logPath).filter((l) => l.type === 'List');
      await waitForLine(d.logPath, () => lists().length >= 1, 'the List at info');
      expect(lists().map((l) => l.level)).toEqual([30]);

      // Keys other than logging.level are not applied without a restart, and the log says which.
      const atInfo = config.replace(/^ {2}level: "debug"$/m, '  level: info');
      writeFileSync(d.configPath, atInfo.replace(/^server:\n/m, 'server:\n  job_output_limit: 1234\n'));
      d.proc!.kill('SIGHUP');
      const pending = await waitForLine(d.logPath, (l) => /need a restart/.test(l.msg), 'restart note');
      expect(pending.keys).toEqual(['server.job_output_limit']);
    } finally {
      writeFileSync(d.configPath, config);
    }
    await c.close();
  });
});
