// bin/warden-server: `warden-server --config FILE` runs the daemon in the foreground.
import { parseArgs } from 'node:util';
import { startDaemon } from './daemon.ts';
import { describeError } from './errors.ts';

const usage = 'usage: warden-server --config FILE';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (values.help) {
    console.log(usage);
    return;
  }
  if (!values.config) throw new Error(`--config is required\n${usage}`);
  const daemon = await startDaemon(values.config);
  const exit = (signal: string) => {
    daemon
      .shutdown(signal)
      .then(() => process.exit(0))
      .catch((err) => {
        console.error(`warden-server: shutdown failed: ${describeError(err)}`);
        process.exit(1);
      });
  };
  // SIGUSR2 is the original's drain signal; TERM and INT drain the same way.
  for (const s of ['SIGUSR2', 'SIGTERM', 'SIGINT'] as const) process.on(s, () => exit(s));
  process.on('SIGPIPE', () => {});
}

main().catch((err) => {
  console.error(`warden-server: ${describeError(err)}`);
  process.exit(1);
});
