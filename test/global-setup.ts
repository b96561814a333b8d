// Once per test run, after every file: remove the shared iptables base chains
// if nothing uses them any more. Files tear down only their own pools' rules
// (files run in parallel, and one removing the base while another sets up
// would race); this single last step leaves the host as it found it.
import { teardownNetworkHost } from '../src/backends/linux/network/host.ts';

export async function teardown(): Promise<void> {
  await teardownNetworkHost(undefined, { removeUnusedBase: true }).catch((err: Error) => {
    console.error(`global teardown: ${err.message}`);
  });
}
