// The Linux network module for real, as root: fake containers are processes in
// new network namespaces. Traffic goes only to loopback and to namespaces made
// here; the egress guard drops anything from the test pool that would leave.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { randomInt } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import net from 'node:net';
import { execa } from 'execa';
import {
  bandwidthStat,
  createContainerNetwork,
  destroyContainerNetwork,
  limitBandwidth,
  netIn,
  netOut,
  restoreContainerNetwork,
  restoreContainerNetworks,
  setupNetworkHost,
  sweepNetwork,
  teardownNetworkHost,
  type ContainerNetSpec,
  type NetOutRule,
} from '../../src/backends/linux/network/index.ts';
import { applyBatch, newBatch } from '../../src/backends/linux/network/iptables.ts';
import { setHostRunner } from '../../src/host/run.ts';
import { spawnHost } from '../../src/host/spawner.ts';
import { formatIpv4, parseIpv4 } from '../../src/model/ipv4.ts';
import { ROOT } from '../support/daemon.ts';
import { egressGuardRules, installEgressGuard, removeEgressGuard } from '../support/egress-guard.ts';
import {
  icmpPing,
  inNetns,
  measureDownload,
  measureUpload,
  pingFromHost,
  pingFromNetns,
  startNetns,
  startServer,
  type Netns,
} from '../support/linux/netns.ts';

const POOL = '10.244.0.0/22';
const BASE32 = '0123456789abcdefghijklmnopqrstuv';
// Ids of this run share a random 3-character prefix, so sweeps here never touch anyone else's.
const RUN = Array.from({ length: 3 }, () => BASE32[randomInt(32)]).join('');

let seq = 0;
// A random first /30 per run: another suite on the same pool rarely collides.
const firstNet = randomInt(0, 200);

function nextSpec(): ContainerNetSpec {
  const n = seq++;
  const id = RUN + n.toString(32).padStart(8, '0');
  const base = parseIpv4('10.244.0.0')! + 4 * (firstNet + n);
  return { id, hostIp: formatIpv4(base + 1), containerIp: formatIpv4(base + 2), mtu: 1500 };
}

// Everything a test made, undone in afterEach even when the test failed.
const cleanups: Array<() => unknown> = [];

async function container(opts: { network?: boolean } = {}): Promise<{ spec: ContainerNetSpec; ns: Netns }> {
  const ns = await startNetns();
  cleanups.push(() => ns.kill());
  const spec = nextSpec();
  cleanups.push(() => destroyContainerNetwork(spec.id));
  if (opts.network !== false) await createContainerNetwork(spec, ns.pid);
  return { spec, ns };
}

async function server(pid: number, ports: number[]): Promise<void> {
  const s = await startServer(pid, ports);
  cleanups.push(() => s.stop());
}

/** A free TCP port on the host (for net_in host ports and host listeners). */
async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

async function ruleset(): Promise<string> {
  const { stdout } = await execa('iptables-save');
  return stdout;
}

/** The rules (iptables-save lines) that mention any of the needles: robust against other suites' rules. */
async function rulesWith(...needles: string[]): Promise<string[]> {
  return (await ruleset()).split('\n').filter((l) => l.startsWith('-A ') && needles.some((n) => l.includes(n)));
}

/** Base chains' rules and this suite's pool rules. */
function baseRules(): Promise<string[]> {
  return rulesWith(POOL, '-A warden-forward ', '-j warden-', 'warden-default -j REJECT', 'warden-input -m', 'warden-input -d', '127.0.0.0/8 -o w-+');
}

async function ourTraces(id: string): Promise<string[]> {
  const traces: string[] = [];
  for (const n of await readdir('/sys/class/net')) if (n.startsWith(`w-${id}-`)) traces.push(`interface ${n}`);
  for (const line of (await ruleset()).split('\n')) {
    if (line.includes(`warden-i-${id}`) || line.includes(`w-${id}-`)) traces.push(`iptables: ${line}`);
  }
  const { stdout } = await execa('tc', ['qdisc', 'show']);
  for (const line of stdout.split('\n')) if (line.includes(`w-${id}-`)) traces.push(`qdisc: ${line}`);
  return traces;
}

// Runs as root, as CI does: never skipped.
describe('linux network', () => {
  beforeAll(async () => {
    await installEgressGuard(POOL);
    await setupNetworkHost({ poolNetwork: POOL, allowNetworks: [], denyNetworks: [], allowHostAccess: false });
  });

  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await Promise.resolve(fn()).catch(() => undefined);
  });

  afterAll(async () => {
    await sweepNetwork(new Set(), { include: (id) => id.startsWith(RUN) }).catch(() => undefined);
    await teardownNetworkHost(POOL).catch(() => undefined);
    await removeEgressGuard();
  });

  it('installs the egress guard first in FORWARD, and setup is idempotent', async () => {
    const guard = await egressGuardRules();
    expect(guard.some((r) => r.startsWith('mangle:') && r.includes(`-s ${POOL} ! -o w-+`) && r.endsWith('-j DROP'))).toBe(true);
    expect(guard.some((r) => r.startsWith('filter:'))).toBe(true);
    const { stdout } = await execa('iptables', ['-w', '-t', 'mangle', '-S', 'FORWARD']);
    expect(stdout.split('\n')[1]).toContain('warden-egress-guard');

    // Per-container jumps come and go with other suites' containers: leave them out.
    const perContainer = (l: string) => l.includes('warden-instances -i') || / -[jg] warden-i-/.test(l);
    const before = (await baseRules()).filter((l) => !perContainer(l));
    expect(before.length).toBeGreaterThan(10);
    await setupNetworkHost({ poolNetwork: POOL, allowNetworks: [], denyNetworks: [], allowHostAccess: false });
    await installEgressGuard(POOL);
    expect((await baseRules()).filter((l) => !perContainer(l))).toEqual(before);
  });

  it('applies allow_networks, deny_networks and allow_host_access, and setup replaces them', async () => {
    const a = await container();
    const b = await container();
    await server(b.ns.pid, [9101]);
    const port = await freePort();
    const srv = net.createServer((s) => s.end('pong\n'));
    await new Promise<void>((r) => srv.listen(port, a.spec.hostIp, r));
    cleanups.push(() => srv.close());
    const normal = { poolNetwork: POOL, allowNetworks: [], denyNetworks: [], allowHostAccess: false };
    cleanups.push(() => setupNetworkHost(normal));

    await setupNetworkHost({ ...normal, allowNetworks: [`${b.spec.containerIp}/32`], denyNetworks: ['10.244.3.0/24'], allowHostAccess: true });
    const defaults = (await rulesWith('-A warden-default ')).filter((l) => l.includes(POOL) || l.includes('REJECT'));
    expect(defaults).toEqual([
      `-A warden-default -s ${POOL} -d ${b.spec.containerIp}/32 -j ACCEPT`,
      `-A warden-default -s ${POOL} -d 10.244.3.0/24 -j DROP`,
      '-A warden-default -p tcp -j REJECT --reject-with tcp-reset',
      '-A warden-default -j REJECT --reject-with icmp-port-unreachable',
    ]);
    expect(await pingFromNetns(a.ns.pid, b.spec.containerIp, 9101)).toBe('pong');
    expect(await pingFromNetns(a.ns.pid, a.spec.hostIp, port)).toBe('pong');

    await setupNetworkHost(normal);
    expect(await rulesWith(`-d ${b.spec.containerIp}/32 -j ACCEPT`, '-d 10.244.3.0/24 -j DROP')).toEqual([]);
    expect(await pingFromNetns(a.ns.pid, b.spec.containerIp, 9101)).toMatch(/ECONNREFUSED|timeout/);
    expect(await pingFromNetns(a.ns.pid, a.spec.hostIp, port)).toMatch(/ECONNREFUSED|EHOSTUNREACH|timeout/);
  });

  it('creates the veth pair and reaches the container from the host (ICMP and TCP)', async () => {
    const ns = await startNetns();
    cleanups.push(() => ns.kill());
    const spec = { ...nextSpec(), mtu: 1400 };
    cleanups.push(() => destroyContainerNetwork(spec.id));

    const t0 = performance.now();
    await createContainerNetwork(spec, ns.pid);
    const createMs = performance.now() - t0;

    const host = await execa('ip', ['-o', '-4', 'addr', 'show', 'dev', `w-${spec.id}-0`]);
    expect(host.stdout).toContain(`${spec.hostIp}/30`);
    const inner = await inNetns(ns.pid, ['ip', '-o', '-4', 'addr', 'show', 'dev', `w-${spec.id}-1`]);
    expect(inner.stdout).toContain(`${spec.containerIp}/30`);
    expect((await inNetns(ns.pid, ['ip', 'route', 'show', 'default'])).stdout).toContain(`via ${spec.hostIp}`);
    expect((await inNetns(ns.pid, ['ip', 'link', 'show', 'lo'])).stdout).toContain('UP');
    expect((await inNetns(ns.pid, ['ip', 'link', 'show', `w-${spec.id}-1`])).stdout).toContain('mtu 1400');

    expect(await icmpPing(undefined, spec.containerIp)).toBe(true);
    await server(ns.pid, [7001]);
    expect(await pingFromHost(spec.containerIp, 7001)).toBe('pong');

    const t1 = performance.now();
    await destroyContainerNetwork(spec.id);
    const destroyMs = performance.now() - t1;
    console.log(`create network ${createMs.toFixed(1)} ms, destroy network ${destroyMs.toFixed(1)} ms`);
  });

  it('refuses to put the container end into the host namespace', async () => {
    const spec = nextSpec();
    await expect(createContainerNetwork(spec, process.pid)).rejects.toThrow(/host's network namespace/);
    expect(await ourTraces(spec.id)).toEqual([]);
  });

  it('undoes everything when create fails half way', async () => {
    const spec = nextSpec();
    // A pid that does not exist: the chains are made first, then the veth step fails.
    await expect(createContainerNetwork(spec, 999_999_999)).rejects.toThrow(/create network/);
    expect(await ourTraces(spec.id)).toEqual([]);
  });

  it('net_in: reachable via 127.0.0.1, the host end address and from another container', async () => {
    const a = await container();
    const b = await container();
    await server(a.ns.pid, [8080]);
    const hostPort = await freePort();

    expect(await pingFromHost('127.0.0.1', hostPort, 500)).not.toBe('pong');
    await netIn(a.spec, hostPort, 8080);
    await netIn(a.spec, hostPort, 8080); // idempotent
    const nat = await execa('iptables', ['-w', '-t', 'nat', '-S', `warden-i-${a.spec.id}`]);
    expect(nat.stdout.split('\n').filter((l) => l.includes('DNAT'))).toHaveLength(1);

    expect(await pingFromHost('127.0.0.1', hostPort)).toBe('pong');
    expect(await pingFromHost(a.spec.hostIp, hostPort)).toBe('pong');
    // Container b reaches a's port through its own gateway (a host address), despite b's default deny.
    expect(await pingFromNetns(b.ns.pid, b.spec.hostIp, hostPort)).toBe('pong');
  });

  it('net_in with the recorded rules: one restore keeps the earlier rules, adds the new one once', async () => {
    const a = await container();
    await server(a.ns.pid, [8080, 8081]);
    const first = await freePort();
    const second = await freePort();
    await netIn(a.spec, first, 8080, []);
    const recorded = [{ host_port: first, container_port: 8080 }];
    await netIn(a.spec, second, 8081, recorded);
    await netIn(a.spec, second, 8081, [...recorded, { host_port: second, container_port: 8081 }]); // idempotent
    const nat = await execa('iptables', ['-w', '-t', 'nat', '-S', `warden-i-${a.spec.id}`]);
    const dnat = nat.stdout.split('\n').filter((l) => l.includes('DNAT'));
    expect(dnat).toHaveLength(2);
    expect(await pingFromHost('127.0.0.1', first)).toBe('pong');
    expect(await pingFromHost('127.0.0.1', second)).toBe('pong');
  });

  it('net_out: default deny, then allowed by port, by port range, and ICMP', async () => {
    const a = await container();
    const b = await container();
    await server(b.ns.pid, [9001, 9005]);
    // The host reaches b: the server is up.
    expect(await pingFromHost(b.spec.containerIp, 9001)).toBe('pong');

    expect(await pingFromNetns(a.ns.pid, b.spec.containerIp, 9001)).toMatch(/ECONNREFUSED|timeout/);
    expect(await icmpPing(a.ns.pid, b.spec.containerIp)).toBe(false);

    await netOut(a.spec, { network: `${b.spec.containerIp}/32`, port: 9001 });
    expect(await pingFromNetns(a.ns.pid, b.spec.containerIp, 9001)).toBe('pong');
    expect(await pingFromNetns(a.ns.pid, b.spec.containerIp, 9005)).toMatch(/ECONNREFUSED|timeout/);

    await netOut(a.spec, { network: b.spec.containerIp, port_range: '9004:9006', protocol: 0 });
    expect(await pingFromNetns(a.ns.pid, b.spec.containerIp, 9005)).toBe('pong');

    await netOut(a.spec, { network: b.spec.containerIp, protocol: 2, icmp_type: 8, icmp_code: 0 });
    expect(await icmpPing(a.ns.pid, b.spec.containerIp)).toBe(true);
    // b's own default deny is untouched: b cannot open connections to a.
    await server(a.ns.pid, [9010]);
    expect(await pingFromNetns(b.ns.pid, a.spec.containerIp, 9010)).toMatch(/ECONNREFUSED|timeout/);

    await netOut(a.spec, { network: '10.244.3.0-10.244.3.9', protocol: 3, log: true });
    await netOut(a.spec, { network: '10.244.3.0-10.244.3.9', protocol: 3, log: true }); // idempotent
    const chain = (await execa('iptables', ['-w', '-S', `warden-i-${a.spec.id}`])).stdout.split('\n');
    expect(chain.filter((l) => l.includes('--dst-range 10.244.3.0-10.244.3.9') && l.includes(`-g warden-i-${a.spec.id}-log`))).toHaveLength(1);
    expect(chain.at(-1)).toBe(`-A warden-i-${a.spec.id} -g warden-default`);
    const log = (await execa('iptables', ['-w', '-S', `warden-i-${a.spec.id}-log`])).stdout;
    expect(log).toContain('-j LOG');
  });

  it('containers cannot open connections to host addresses (allow_host_access false)', async () => {
    const a = await container();
    const port = await freePort();
    const srv = net.createServer((s) => s.end('pong\n'));
    await new Promise<void>((r) => srv.listen(port, a.spec.hostIp, r));
    cleanups.push(() => srv.close());
    expect(await pingFromNetns(a.ns.pid, a.spec.hostIp, port)).toMatch(/ECONNREFUSED|EHOSTUNREACH|timeout/);
    // The host's connections to the container, and their replies, are fine.
    await server(a.ns.pid, [7002]);
    expect(await pingFromHost(a.spec.containerIp, 7002)).toBe('pong');
  });

  it('the egress guard drops pool traffic leaving through a non-w interface', async () => {
    const a = await container();
    await netOut(a.spec, { network: '0.0.0.0/0', protocol: 3 });
    // An "outside" that is only another namespace of ours, behind an interface not named w-*.
    const outside = await startNetns();
    cleanups.push(() => outside.kill());
    const third = randomInt(0, 255);
    const ifname = `wg${RUN}${randomInt(1000)}`;
    await execa('ip', ['link', 'add', ifname, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', String(outside.pid)]);
    cleanups.push(() => execa('ip', ['link', 'del', ifname], { reject: false }));
    await execa('ip', ['addr', 'add', `198.18.${third}.1/30`, 'dev', ifname]);
    await execa('ip', ['link', 'set', ifname, 'up']);
    await inNetns(outside.pid, ['ip', 'addr', 'add', `198.18.${third}.2/30`, 'dev', 'eth0']);
    await inNetns(outside.pid, ['ip', 'link', 'set', 'eth0', 'up']);
    await server(outside.pid, [7003]);
    expect(await pingFromHost(`198.18.${third}.2`, 7003)).toBe('pong');

    expect(await pingFromNetns(a.ns.pid, `198.18.${third}.2`, 7003, 1500)).toBe('timeout');
  });

  it('rejects invalid net_out rules with a message the user can act on', async () => {
    const spec = nextSpec(); // validation comes before any host change
    const cases: Array<[NetOutRule, RegExp]> = [
      [{}, /^Please specify network, port, and\/or port_range\.$/],
      [{ protocol: 2 }, /^Please specify network, port, and\/or port_range\.$/],
      [{ network: '10.0.0.300' }, /network "10.0.0.300": expected an IPv4 address/],
      [{ network: '10.0.0.0/33' }, /expected an IPv4 address, a CIDR/],
      [{ network: '10.0.0.9-10.0.0.1' }, /or a range like/],
      [{ port: 0 }, /port 0: expected 1-65535/],
      [{ port: 70000 }, /port 70000: expected 1-65535/],
      [{ port_range: '90:80' }, /^Port range maximum must be greater than minimum$/],
      [{ port_range: '80:80' }, /^Port range maximum must be greater than minimum$/],
      [{ port_range: '80-90' }, /port_range "80-90": expected "port" or "min:max"/],
      [{ port: 53, protocol: 2 }, /needs protocol TCP or UDP, not ICMP/],
      [{ port: 53, protocol: 3 }, /needs protocol TCP or UDP, not ALL/],
      [{ network: '10.0.0.1', protocol: 2, icmp_type: 256 }, /icmp_type 256: expected 0-255/],
      [{ network: '10.0.0.1', protocol: 7 as never }, /protocol 7/],
    ];
    for (const [rule, message] of cases) {
      await expect(netOut(spec, rule), JSON.stringify(rule)).rejects.toThrow(message);
    }
    await expect(netIn(spec, 0, 80)).rejects.toThrow(/host_port 0 is out of range/);
    await expect(limitBandwidth(spec.id, 0, 1000)).rejects.toThrow(/rate 0 must be a positive/);
    // Host failures carry the step, the command and its error.
    await expect(netIn(spec, 5000, 80)).rejects.toThrow(/^net_in: iptables .*-A warden-i-\w+ .* failed: /);
    await expect(limitBandwidth(spec.id, 1000, 1000)).rejects.toThrow(/limit_bandwidth: interface w-\w+-0 does not exist/);
  });

  // The precise shaped rate is the bench's figure; here, measured over ~4 s a direction
  // and bounded loosely so a busy machine cannot trip it: shaping happens (not above 2x
  // the limit, well below the unshaped rate) and does not overshoot (not below a quarter
  // of the limit: wrong units would be 8x off).
  it('shapes both directions to about the limit and changes the limit live', async () => {
    const a = await container();
    await server(a.ns.pid, [7004]);
    const rate = 500_000; // 4 Mbit/s
    const burst = 64 * 1024;
    const bytes = 2_000_000;
    expect(await bandwidthStat(a.spec.id)).toBeUndefined();
    const free = { into: await measureUpload(a.spec.containerIp, 7004, bytes), from: await measureDownload(a.spec.containerIp, 7004, bytes) };
    await limitBandwidth(a.spec.id, rate, burst);
    const stat = await bandwidthStat(a.spec.id);
    expect(stat).toMatchObject({ in_rate: rate, out_rate: rate });
    expect(Math.abs(stat!.in_burst - burst)).toBeLessThan(burst * 0.01);
    expect(Math.abs(stat!.out_burst - burst)).toBeLessThan(burst * 0.01);

    const into = await measureUpload(a.spec.containerIp, 7004, bytes);
    const from = await measureDownload(a.spec.containerIp, 7004, bytes);
    console.log(`unshaped: host->container ${free.into.toFixed(0)} B/s, container->host ${free.from.toFixed(0)} B/s; shaped at ${rate} B/s: host->container ${into.toFixed(0)} B/s, container->host ${from.toFixed(0)} B/s`);
    for (const [shaped, unshaped] of [[into, free.into], [from, free.from]] as const) {
      expect(shaped).toBeLessThan(2 * rate);
      expect(shaped).toBeGreaterThan(rate / 4);
      expect(shaped).toBeLessThan(unshaped / 2);
    }

    await limitBandwidth(a.spec.id, 2 * rate, burst);
    await limitBandwidth(a.spec.id, 2 * rate, burst); // repeatable, no duplicate filter
    expect(await bandwidthStat(a.spec.id)).toMatchObject({ in_rate: 2 * rate, out_rate: 2 * rate });
    const filters = await execa('tc', ['filter', 'show', 'dev', `w-${a.spec.id}-0`, 'parent', 'ffff:']);
    expect(filters.stdout.match(/mirred/g)).toHaveLength(1);
  });

  it('destroy leaves no interface, chain, rule or qdisc, and can be repeated', async () => {
    const a = await container();
    await netIn(a.spec, await freePort(), 80);
    await netOut(a.spec, { network: '10.244.3.0/24', port: 80, log: true });
    await limitBandwidth(a.spec.id, 100_000, 20_000);
    expect((await ourTraces(a.spec.id)).length).toBeGreaterThan(0);

    await destroyContainerNetwork(a.spec.id);
    expect(await ourTraces(a.spec.id)).toEqual([]);
    await destroyContainerNetwork(a.spec.id);
    expect(await ourTraces(a.spec.id)).toEqual([]);
  });

  it('restore rebuilds rules idempotently after a restart', async () => {
    const a = await container();
    await server(a.ns.pid, [8081]);
    const hostPort = await freePort();
    const rules: NetOutRule[] = [{ network: '10.244.3.0/24', port: 80 }, { network: '10.244.3.7', protocol: 1, port_range: '100:200', log: true }];
    await netIn(a.spec, hostPort, 8081);
    for (const r of rules) await netOut(a.spec, r);
    await limitBandwidth(a.spec.id, 300_000, 30_000);
    const mine = () => rulesWith(`warden-i-${a.spec.id}`, `w-${a.spec.id}-`);
    const before = await mine();
    expect(before.length).toBeGreaterThan(5);

    // A daemon restart: chains may exist; restoring twice changes nothing.
    await restoreContainerNetwork(a.spec, [{ host_port: hostPort, container_port: 8081 }], rules, { rate: 300_000, burst: 30_000 });
    await restoreContainerNetwork(a.spec, [{ host_port: hostPort, container_port: 8081 }], rules, { rate: 300_000, burst: 30_000 });
    expect(await mine()).toEqual(before);
    expect(await pingFromHost('127.0.0.1', hostPort)).toBe('pong');
    expect(await bandwidthStat(a.spec.id)).toMatchObject({ in_rate: 300_000, out_rate: 300_000 });

    // Rules lost (e.g. a host firewall reload dropped our per-container chain contents): restore brings them back.
    await execa('iptables', ['-w', '-t', 'nat', '-F', `warden-i-${a.spec.id}`]);
    expect(await pingFromHost('127.0.0.1', hostPort, 500)).not.toBe('pong');
    await restoreContainerNetwork(a.spec, [{ host_port: hostPort, container_port: 8081 }], rules);
    expect(await pingFromHost('127.0.0.1', hostPort)).toBe('pong');
    expect(await bandwidthStat(a.spec.id)).toBeUndefined(); // no limit recorded: cleared
  });

  it('restoring many at once puts every recorded limit back in one tc batch; a limit that fails is its container\'s error alone', async () => {
    const kept = await container();
    const changed = await container();
    const unlimited = await container();
    const ifbGone = await container();
    const clash = await container();
    const limit = { rate: 300_000, burst: 30_000 };
    await limitBandwidth(kept.spec.id, limit.rate, limit.burst);
    await limitBandwidth(changed.spec.id, 100_000, 20_000);
    // Shaping left on a container whose record has none (a limit set just before a crash, say).
    await limitBandwidth(unlimited.spec.id, 100_000, 20_000);
    await execa('ip', ['link', 'del', `w-${ifbGone.spec.id}-2`]);
    // A qdisc of someone else's where ours goes: tc refuses the ingress qdisc there.
    await execa('tc', ['qdisc', 'add', 'dev', `w-${clash.spec.id}-0`, 'clsact']);

    const commands: string[] = [];
    setHostRunner((req) => {
      commands.push([req.file, ...req.args].join(' '));
      return spawnHost(req);
    });
    let results: Array<Error | undefined>;
    try {
      results = await restoreContainerNetworks(
        [kept, changed, unlimited, ifbGone, clash].map((a) => ({
          spec: a.spec,
          netIn: [],
          netOut: [],
          bandwidth: a === unlimited ? undefined : limit,
        })),
      );
    } finally {
      setHostRunner(undefined);
    }
    expect(results.slice(0, 4)).toEqual([undefined, undefined, undefined, undefined]);
    expect(results[4]?.message).toMatch(/^limit_bandwidth: tc -batch - failed: .*Invalid qdisc name/s);
    for (const a of [kept, changed, ifbGone]) expect(await bandwidthStat(a.spec.id)).toMatchObject({ in_rate: limit.rate, out_rate: limit.rate });
    expect(await bandwidthStat(unlimited.spec.id)).toBeUndefined();
    // One batch for all five; then, alone, the one whose ifb had to be made and the one that failed.
    expect(commands.filter((c) => c.startsWith('tc -force -batch'))).toHaveLength(1);
    expect(commands.filter((c) => c.startsWith('tc -batch'))).toHaveLength(2);
    // Their chains lived on as made: one listing, and no restore.
    expect(commands.filter((c) => c.startsWith('iptables'))).toEqual(['iptables-save']);
  });

  it('restoring many at once rewrites only the chains that differ from their records', async () => {
    const intact = await container();
    const emptied = await container();
    const hostPort = await freePort();
    const rules: NetOutRule[] = [{ network: '10.244.3.0/24', port: 80 }, { network: '10.244.3.7', protocol: 1, port_range: '100:200', log: true }];
    for (const a of [intact, emptied]) {
      await netIn(a.spec, hostPort + (a === intact ? 0 : 1), 8080);
      for (const r of rules) await netOut(a.spec, r);
    }
    const mine = (a: typeof intact) => rulesWith(`warden-i-${a.spec.id}`);
    const before = { intact: await mine(intact), emptied: await mine(emptied) };
    // A firewall reload took one container's rules.
    await execa('iptables', ['-w', '-F', `warden-i-${emptied.spec.id}`]);
    await execa('iptables', ['-w', '-t', 'nat', '-F', `warden-i-${emptied.spec.id}`]);

    const inputs: string[] = [];
    setHostRunner((req) => {
      if (req.file === 'iptables-restore') inputs.push(Buffer.from(req.inputBase64 ?? '', 'base64').toString());
      return spawnHost(req);
    });
    let results: Array<Error | undefined>;
    try {
      results = await restoreContainerNetworks(
        [intact, emptied].map((a) => ({
          spec: a.spec,
          netIn: [{ host_port: hostPort + (a === intact ? 0 : 1), container_port: 8080 }],
          netOut: rules,
        })),
      );
    } finally {
      setHostRunner(undefined);
    }
    expect(results).toEqual([undefined, undefined]);
    expect(await mine(intact)).toEqual(before.intact);
    expect(await mine(emptied)).toEqual(before.emptied);
    // One restore, of the emptied container's chains only.
    expect(inputs).toHaveLength(1);
    expect(inputs[0]).toContain(`:warden-i-${emptied.spec.id} - [0:0]`);
    expect(inputs[0]).not.toContain(intact.spec.id);
  });

  it('sweep removes unclaimed leftovers and keeps claimed ones', async () => {
    const kept = await container();
    const leftover = await container();
    const chainOnly = nextSpec(); // a half-made leftover: chains but no interface
    await execa('iptables', ['-w', '-N', `warden-i-${chainOnly.id}`]);
    cleanups.push(() => destroyContainerNetwork(chainOnly.id));

    await sweepNetwork(new Set([kept.spec.id]), { include: (id) => id.startsWith(RUN) });
    expect(await ourTraces(leftover.spec.id)).toEqual([]);
    expect(await ourTraces(chainOnly.id)).toEqual([]);
    expect((await ourTraces(kept.spec.id)).length).toBeGreaterThan(0);
    await server(kept.ns.pid, [7005]);
    expect(await pingFromHost(kept.spec.containerIp, 7005)).toBe('pong');
  });

  it('creates and destroys several containers concurrently', async () => {
    const made = await Promise.all(Array.from({ length: 8 }, () => container({ network: false })));
    const t0 = performance.now();
    await Promise.all(made.map(({ spec, ns }) => createContainerNetwork(spec, ns.pid)));
    const createMs = performance.now() - t0;
    for (const { spec } of made) expect(await icmpPing(undefined, spec.containerIp)).toBe(true);
    const t1 = performance.now();
    await Promise.all(made.map(({ spec }) => destroyContainerNetwork(spec.id)));
    const destroyMs = performance.now() - t1;
    console.log(`8 concurrent: create ${createMs.toFixed(0)} ms, destroy ${destroyMs.toFixed(0)} ms`);
    for (const { spec } of made) expect(await ourTraces(spec.id)).toEqual([]);
  });

  it('batches queued together go in one restore; a bad one fails alone and nothing is applied twice', async () => {
    const [A, B, C] = [nextSpec(), nextSpec(), nextSpec()];
    for (const s of [A, B, C]) cleanups.push(() => destroyContainerNetwork(s.id));
    await execa('iptables', ['-w', '-N', `warden-i-${A.id}`]);
    // A's filter line is not idempotent: applied twice, the chain would hold it twice.
    const a = { ...newBatch(), filter: [`-A warden-i-${A.id} -j ACCEPT`], nat: [`:warden-i-${A.id} - [0:0]`] };
    // B's nat line deletes a rule that is not there: the merged restore fails in its nat part.
    const b = { ...newBatch(), filter: [`:warden-i-${B.id} - [0:0]`], nat: [`-D warden-i-${B.id} -j ACCEPT`] };
    const c = { ...newBatch(), nat: [`:warden-i-${C.id} - [0:0]`, `-A warden-i-${C.id} -p tcp -m tcp --dport 1 -j DNAT --to-destination ${C.containerIp}:80`] };
    const results = await Promise.all([a, b, c].map((x) => applyBatch(x, 'group test').then(() => 'ok', (e: Error) => e.message)));
    expect(results[0]).toBe('ok');
    expect(results[1]).toMatch(/^group test: iptables-restore .* failed: .*\(rule: -D warden-i-\S+ -j ACCEPT\)$/);
    expect(results[2]).toBe('ok');
    const list = async (table: string, chain: string) => (await execa('iptables', ['-w', '-t', table, '-S', chain], { reject: false })).stdout;
    expect((await list('filter', `warden-i-${A.id}`)).split('\n').filter((l) => l.includes('ACCEPT'))).toHaveLength(1);
    expect(await list('nat', `warden-i-${A.id}`)).toBe(`-N warden-i-${A.id}`);
    expect(await list('filter', `warden-i-${B.id}`)).toBe(`-N warden-i-${B.id}`);
    expect((await list('nat', `warden-i-${C.id}`)).split('\n').filter((l) => l.includes('DNAT'))).toHaveLength(1);
  });

  // Last: takes this suite's pool rules away.
  it('teardown removes this pool\'s rules and none of this run\'s traces remain', async () => {
    await teardownNetworkHost(POOL, { removeUnusedBase: true });
    expect((await rulesWith(POOL)).filter((l) => !l.includes('warden-egress-guard'))).toEqual([]);
    expect((await rulesWith(`warden-i-${RUN}`, `w-${RUN}`))).toEqual([]);
    await teardownNetworkHost(POOL); // repeatable
    expect((await rulesWith(POOL)).filter((l) => !l.includes('warden-egress-guard'))).toEqual([]);
  });

  // The base chains go only when nothing uses them: on a shared host that depends on
  // other suites, so it is checked where nothing else can be, a private namespace.
  it('teardown keeps the other pool\'s rules and the base chains while used, removes all when nothing uses them', async () => {
    const [a, b, chain] = ['10.244.0.0/22', '10.250.0.0/24', 'warden-i-zz0000001'];
    const { stdout } = await execa('unshare', [
      '-n', '-m', '--propagation', 'private', 'sh', '-c', 'mount -t sysfs sysfs /sys && exec "$@"', 'sh',
      join(ROOT, 'node_modules/.bin/node'), join(ROOT, 'test/support/linux/network-teardown-private.ts'), a, b, chain,
    ]);
    const steps = JSON.parse(stdout) as Record<
      'setUp' | 'unusedWhileUsed' | 'afterA' | 'afterB' | 'afterChainGone' | 'unusedAfterPlainTeardown' | 'unusedAtTheEnd' | 'atTheEnd',
      string[]
    >;
    const naming = (lines: string[], s: string) => lines.filter((l) => l.includes(s));
    const base = [':warden-forward ', ':warden-instances ', ':warden-default ', ':warden-input ', ':warden-prerouting ', ':warden-postrouting '];
    const hasBase = (lines: string[]) => base.every((c) => lines.some((l) => l.startsWith(c)));

    expect(naming(steps.setUp, `-s ${a} `).length).toBeGreaterThanOrEqual(2);
    expect(naming(steps.setUp, `-s ${b} `).length).toBeGreaterThanOrEqual(3);
    // A's teardown: A's rules gone, B's untouched, base kept (B uses it).
    expect(naming(steps.afterA, a)).toEqual([]);
    expect(naming(steps.afterA, b)).toEqual(naming(steps.setUp, b));
    expect(hasBase(steps.afterA)).toBe(true);
    // B's teardown: B's rules gone, base kept (a container's chain uses it).
    expect(naming(steps.afterB, b)).toEqual([]);
    expect(hasBase(steps.afterB)).toBe(true);
    expect(steps.afterB.some((l) => l.startsWith(`:${chain} `))).toBe(true);
    // Nothing uses the base any more: every warden chain and jump is gone.
    expect(naming(steps.afterChainGone, 'warden')).toEqual([]);
    // What a leak check sees: nothing while pools use the base; the six base chains when
    // a teardown left them unused; nothing once the last teardown removed them.
    expect(steps.unusedWhileUsed).toEqual([]);
    expect(steps.unusedAfterPlainTeardown.sort()).toEqual(
      ['filter warden-default', 'filter warden-forward', 'filter warden-input', 'filter warden-instances', 'nat warden-postrouting', 'nat warden-prerouting'],
    );
    expect(steps.unusedAtTheEnd).toEqual([]);
    expect(naming(steps.atTheEnd, 'warden')).toEqual([]);
  });
});
