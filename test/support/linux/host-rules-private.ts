// Run by test/linux/host-setup-again.test.ts inside a private network namespace
// (unshare -n): the real network setup on a host set up already, and after the
// base is broken by hand (a jump, a whole chain, a rule of warden-forward), the
// config changed, or another config's stale rules left. Breaking the shared base
// on the host itself would cut other test files' containers off; here nothing
// else uses it. Each step's host commands (through the runner) and the rules
// after it go to stdout as JSON.
import { execa } from 'execa';
import { setHostRunner } from '../../../src/host/run.ts';
import { spawnHost } from '../../../src/host/spawner.ts';
import { setupNetworkHost } from '../../../src/backends/linux/network/index.ts';
import type { NetworkHostConfig } from '../../../src/backends/linux/network/types.ts';

export interface Step {
  /** Host commands the setup ran, as command lines. */
  commands: string[];
  /** Input of its iptables-restore runs. */
  restores: string[];
  /** Stale tags it reported. */
  stale: string[];
  /** iptables-save's chains and rules (filter and nat) after it. */
  rules: string[];
}

const [pool, staleNet] = process.argv.slice(2) as [string, string];
const cfg: NetworkHostConfig = {
  poolNetwork: pool,
  allowNetworks: ['10.1.0.0/16', '192.168.7.7'],
  denyNetworks: ['10.9.0.0/16'],
  allowHostAccess: false,
  hostResolver: '127.0.0.53',
  tag: 'f00d0001',
};
const STALE = 'dead0001';

const calls: Array<{ line: string; input?: string }> = [];
setHostRunner((req) => {
  const input = req.inputBase64 === undefined ? undefined : Buffer.from(req.inputBase64, 'base64').toString('utf8');
  calls.push({ line: [req.file, ...req.args].join(' '), ...(input === undefined ? {} : { input }) });
  return spawnHost(req);
});

async function rules(): Promise<string[]> {
  const { stdout } = await execa('iptables-save');
  return stdout.split('\n').filter((l) => l.startsWith('-A ') || l.startsWith(':'));
}

async function iptables(...args: string[]): Promise<void> {
  await execa('iptables', ['-w', ...args]);
}

async function setup(c: NetworkHostConfig = cfg): Promise<Step> {
  calls.length = 0;
  const stale = await setupNetworkHost(c, { isStale: async (t) => t === STALE });
  return {
    commands: calls.map((x) => x.line),
    restores: calls.filter((x) => x.line.startsWith('iptables-restore')).map((x) => x.input ?? ''),
    stale,
    rules: await rules(),
  };
}

const steps: Record<string, Step> = {};
steps.first = await setup();
steps.again = await setup();

await iptables('-D', 'FORWARD', '-o', 'w-+', '-j', 'warden-forward');
steps.jumpDeleted = await setup();

await iptables('-t', 'nat', '-D', 'POSTROUTING', '-j', 'warden-postrouting');
await iptables('-t', 'nat', '-F', 'warden-postrouting');
await iptables('-t', 'nat', '-X', 'warden-postrouting');
steps.chainDeleted = await setup();

await iptables('-D', 'warden-forward', '-j', 'DROP');
steps.forwardChanged = await setup();

await iptables('-D', 'warden-default', '-s', pool, '-d', '10.9.0.0/16', '-m', 'comment', '--comment', `warden:${cfg.tag}`, '-j', 'DROP');
steps.poolRuleDeleted = await setup();

steps.denyChanged = await setup({ ...cfg, denyNetworks: ['10.8.0.0/16'] });
steps.denyChangedAgain = await setup({ ...cfg, denyNetworks: ['10.8.0.0/16'] });
steps.denyBack = await setup();

// A config nobody uses any more left its pool's rules.
await iptables('-A', 'warden-input', '-s', staleNet, '-m', 'comment', '--comment', `warden:${STALE}`, '-j', 'REJECT', '--reject-with', 'icmp-host-prohibited');
await iptables('-t', 'nat', '-A', 'warden-postrouting', '-s', staleNet, '!', '-o', 'w-+', '-m', 'comment', '--comment', `warden:${STALE}`, '-j', 'MASQUERADE');
steps.staleLeft = await setup();
steps.afterStale = await setup();

process.stdout.write(JSON.stringify(steps));
// The host-command runner's spawner keeps the loop alive.
process.exit(0);
