// Run by test/linux/network.test.ts inside a private network namespace (unshare -n,
// with /sys remounted so /sys/class/net is that namespace's): the real network
// module sets up two pools and tears them down, and the rules after each step go
// to stdout as JSON. Nothing else on the host can use the base chains there, so
// whether teardown removes them is known in advance, not guessed from the host.
import { execa } from 'execa';
import { setupNetworkHost, teardownNetworkHost, unusedBaseChains } from '../../../src/backends/linux/network/index.ts';

const [poolA, poolB, instanceChain] = process.argv.slice(2) as [string, string, string];

async function rules(): Promise<string[]> {
  const { stdout } = await execa('iptables-save');
  return stdout.split('\n').filter((l) => l.startsWith('-A ') || l.startsWith(':'));
}

const steps: Record<string, string[]> = {};
const config = { allowNetworks: [], denyNetworks: [], allowHostAccess: false };
await setupNetworkHost({ poolNetwork: poolA, ...config });
await setupNetworkHost({ poolNetwork: poolB, ...config, allowNetworks: ['10.251.0.0/24'] });
await execa('iptables', ['-w', '-N', instanceChain]); // a container's chain, as a live container leaves it
steps.setUp = await rules();
steps.unusedWhileUsed = await unusedBaseChains();
await teardownNetworkHost(poolA, { removeUnusedBase: true });
steps.afterA = await rules();
await teardownNetworkHost(poolB, { removeUnusedBase: true });
steps.afterB = await rules();
await execa('iptables', ['-w', '-X', instanceChain]);
await teardownNetworkHost(poolB, { removeUnusedBase: true });
steps.afterChainGone = await rules();
// A teardown that leaves the base (a daemon's drain): the leak check names what is left unused.
await setupNetworkHost({ poolNetwork: poolA, ...config });
await teardownNetworkHost(poolA);
steps.unusedAfterPlainTeardown = await unusedBaseChains();
await teardownNetworkHost(poolA, { removeUnusedBase: true });
steps.unusedAtTheEnd = await unusedBaseChains();
steps.atTheEnd = await rules();
process.stdout.write(JSON.stringify(steps));
// The host-command runner's spawner keeps the loop alive.
process.exit(0);
