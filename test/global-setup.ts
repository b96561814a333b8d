// Once per test run, after every file: remove the shared iptables base chains
// if nothing uses them any more. Files tear down only their own pools' rules
// (files run in parallel, and one removing the base while another sets up
// would race); this single last step leaves the host as it found it.
// A run of unit tests only (test/unit/: no root, no host rules) skips it: the
// iptables listings cost seconds on a loaded host and need root.
import type { TestProject } from 'vitest/node';
import { teardownNetworkHost } from '../src/backends/linux/network/host.ts';

let project: TestProject | undefined;

export function setup(p: TestProject): void {
  project = p;
}

function onlyUnitTests(): boolean {
  const files = project?.vitest.state.getTestModules().map((m) => m.moduleId) ?? [];
  return files.length > 0 && files.every((f) => f.includes('/test/unit/'));
}

export async function teardown(): Promise<void> {
  if (onlyUnitTests()) return;
  await teardownNetworkHost(undefined, { removeUnusedBase: true }).catch((err: Error) => {
    console.error(`global teardown: ${err.message}`);
  });
}
