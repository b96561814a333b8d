// The host-command input a container's create, destroy and net_in produce: one
// iptables-restore per create and per destroy, one `ip -batch` per namespace, and
// net_in as one iptables-restore that rewrites the container's nat chain. No root.
import { describe, expect, it } from 'vitest';
import { createBatch, destroyBatch, netInBatch } from '../../src/backends/linux/network/container.ts';
import { renderBatch } from '../../src/backends/linux/network/iptables.ts';
import { containerEndBatch, hostEndBatch } from '../../src/backends/linux/network/veth.ts';
import type { ContainerNetSpec } from '../../src/backends/linux/network/types.ts';

const spec: ContainerNetSpec = { id: 'abc123', hostIp: '10.247.144.1', containerIp: '10.247.144.2', mtu: 1500 };

describe('create and destroy batches', () => {
  it('create: both chains, the log chain, the default jump and both dispatch jumps in one restore', () => {
    expect(renderBatch(createBatch(spec))).toBe(
      [
        '*filter',
        ':warden-i-abc123 - [0:0]',
        ':warden-i-abc123-log - [0:0]',
        '-A warden-i-abc123-log -m conntrack --ctstate INVALID,NEW,UNTRACKED -j LOG --log-prefix "warden-i-abc123 "',
        '-A warden-i-abc123-log -j ACCEPT',
        '-A warden-i-abc123 -g warden-default',
        '-A warden-instances -i w-abc123-0 -g warden-i-abc123',
        'COMMIT',
        '*nat',
        ':warden-i-abc123 - [0:0]',
        '-A warden-prerouting -p tcp -j warden-i-abc123',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it('destroy: the jumps first, then flush and delete every chain create made', () => {
    expect(renderBatch(destroyBatch('abc123'))).toBe(
      [
        '*filter',
        '-D warden-instances -i w-abc123-0 -g warden-i-abc123',
        '-F warden-i-abc123',
        '-X warden-i-abc123',
        '-F warden-i-abc123-log',
        '-X warden-i-abc123-log',
        'COMMIT',
        '*nat',
        '-D warden-prerouting -p tcp -j warden-i-abc123',
        '-F warden-i-abc123',
        '-X warden-i-abc123',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it('every chain and jump create adds, destroy removes', () => {
    const made = createBatch(spec);
    const gone = destroyBatch(spec.id);
    for (const table of ['filter', 'nat'] as const) {
      const chains = made[table].filter((l) => l.startsWith(':')).map((l) => l.slice(1).split(' ')[0]);
      for (const c of chains) expect(gone[table]).toContain(`-X ${c}`);
      const jumps = made[table].filter((l) => l.startsWith('-A warden-instances') || l.startsWith('-A warden-prerouting'));
      for (const j of jumps) expect(gone[table]).toContain(`-D ${j.slice(3)}`);
    }
  });
});

describe('veth batches', () => {
  it('host end: the pair with the container end put straight into the init namespace, addressed and up', () => {
    expect(hostEndBatch(spec, 4242)).toBe(
      [
        'link add w-abc123-0 mtu 1500 type veth peer name w-abc123-1 mtu 1500 netns 4242',
        'link set dev w-abc123-0 addrgenmode none',
        'addr add 10.247.144.1/30 brd + dev w-abc123-0',
        'link set w-abc123-0 up',
        'link add w-abc123-2 mtu 1500 type ifb',
        'link set w-abc123-2 up',
        '',
      ].join('\n'),
    );
  });

  it('container end: lo, the address, up, the default route via the host end', () => {
    expect(containerEndBatch(spec)).toBe(
      [
        'link set lo up',
        'addr add 10.247.144.2/30 brd + dev w-abc123-1',
        'link set w-abc123-1 up',
        'route replace default via 10.247.144.1 dev w-abc123-1',
        '',
      ].join('\n'),
    );
  });
});

describe('net_in batch', () => {
  const dnat = (h: number, c: number): string =>
    `-A warden-i-abc123 -p tcp -m tcp --dport ${h} -j DNAT --to-destination 10.247.144.2:${c}`;

  it('rewrites the nat chain with the recorded rules and the new one, nothing in filter', () => {
    const b = netInBatch(spec, [{ host_port: 39100, container_port: 8080 }], 39101, 22);
    expect(b.filter).toEqual([]);
    expect(b.nat).toEqual([':warden-i-abc123 - [0:0]', dnat(39100, 8080), dnat(39101, 22)]);
  });

  it('is idempotent: a rule already recorded appears once', () => {
    const b = netInBatch(spec, [{ host_port: 39100, container_port: 8080 }, { host_port: 39102, container_port: 80 }], 39100, 8080);
    expect(b.nat).toEqual([':warden-i-abc123 - [0:0]', dnat(39102, 80), dnat(39100, 8080)]);
  });
});
