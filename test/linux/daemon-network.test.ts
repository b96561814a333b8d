// Through the real daemon (Linux backend): NetIn (DNAT from 127.0.0.1, the host's
// address and other containers) and NetOut (default deny, port, range, ICMP, bad
// rules). Traffic only flows between the host and containers of this file; the
// egress guard drops anything from the pool that would leave the machine.
// Pool 10.245.3.0/24, host ports 24300-24399.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { execa } from 'execa';
import { LinuxDaemon, tcpExchange, waitListening, type Box } from '../support/linux/linux-daemon.ts';
import type { WardenClient } from '../../src/client/client.ts';

const PORT_START = 24300;
let d: LinuxDaemon;
let client: WardenClient;
let a: Box; // the client side
let b: Box; // runs the listeners
let hostAddress: string;
let hostServer: net.Server;
let hostServerPort: number;

function box(): Promise<Box> {
  return d.box(client);
}

/**
 * A TCP connection from inside container x: 'pong', or the error. On its own connection,
 * so checks can run at once: a refusal takes a second here (this kernel ignores the first
 * ICMP unreachable for a SYN and only honours the one for the retransmitted SYN).
 */
async function connectFrom(x: Box, ip: string, port: number): Promise<string> {
  const k = await d.daemon.client();
  const r = await d.run(k, x.handle, `timeout 3 bash -c 'exec 3<>/dev/tcp/$0/$1 && cat <&3' ${ip} ${port} 2>&1; echo "rc=$?"`).finally(() => k.close());
  return r.stdout.includes('pong') ? 'pong' : r.stdout.trim();
}

async function pingFrom(x: Box, ip: string): Promise<boolean> {
  // Raw ICMP sockets need CAP_NET_RAW: a privileged job has it.
  const k = await d.daemon.client();
  const r = await d.run(k, x.handle, `ping -c 1 -W 1 ${ip} >/dev/null 2>&1; echo $?`, true).finally(() => k.close());
  return r.stdout.trim() === '0';
}

beforeAll(async () => {
  d = await LinuxDaemon.start({ pool: '10.245.3.0/24', portStart: PORT_START, uidStart: 33000 });
  client = await d.client();
  [a, b] = await Promise.all([box(), box()]);
  // The machine's own address (not loopback, not ours): DNAT applies to every local address.
  const addrs = await execa('ip', ['-o', '-4', 'addr', 'show', 'scope', 'global']);
  hostAddress = addrs.stdout.split('\n').filter((l) => !/ w-/.test(l)).map((l) => /inet ([\d.]+)\//.exec(l)?.[1]).find(Boolean)!;
  // A service in the host namespace, for the "container -> host" checks.
  hostServer = net.createServer((s) => s.end('pong\n'));
  await new Promise<void>((r) => hostServer.listen(0, '0.0.0.0', r));
  hostServerPort = (hostServer.address() as net.AddressInfo).port;

  await client.spawn({ handle: b.handle, script: 'for p in 8080 8081 8082 8084; do nc -ll -p $p -e echo pong & done; wait' });
  for (const p of [8080, 8081, 8082, 8084]) await waitListening(b.initPid, p);
});

afterAll(async () => {
  hostServer?.close();
  const problems = d ? await d.cleanup() : [];
  expect(problems).toEqual([]);
});

describe('NetIn', () => {
  let hostPort: number;

  it('maps a pooled host port to the container port', async () => {
    const r = await client.netIn({ handle: b.handle, container_port: 8080 });
    hostPort = r.host_port;
    expect(r.container_port).toBe(8080);
    expect(hostPort).toBeGreaterThanOrEqual(PORT_START);
    expect(hostPort).toBeLessThan(PORT_START + 100);
    const nat = await execa('iptables', ['-w', '-t', 'nat', '-S', `warden-i-${b.id}`]);
    expect(nat.stdout).toContain(`--dport ${hostPort} -j DNAT --to-destination ${b.ip}:8080`);
  });

  it('is reachable from 127.0.0.1 and from the host address', async () => {
    expect((await tcpExchange('127.0.0.1', hostPort)).data.toString()).toBe('pong\n');
    expect((await tcpExchange(hostAddress, hostPort)).data.toString()).toBe('pong\n');
  });

  it('is reachable from another container (through its gateway and the host address)', async () => {
    expect(await connectFrom(a, a.hostIp, hostPort)).toBe('pong');
    expect(await connectFrom(a, hostAddress, hostPort)).toBe('pong');
  });

  it('takes an explicit host port; container_port defaults to it', async () => {
    const explicit = PORT_START + 90;
    expect(await client.netIn({ handle: b.handle, host_port: explicit, container_port: 8081 })).toEqual({ host_port: explicit, container_port: 8081 });
    expect((await tcpExchange('127.0.0.1', explicit)).data.toString()).toBe('pong\n');
    const same = await client.netIn({ handle: b.handle });
    expect(same.container_port).toBe(same.host_port);
  });

  it('unmapped ports are not forwarded', async () => {
    const r = await tcpExchange('127.0.0.1', PORT_START + 99, '', 2_000);
    expect(r.error).toBe('ECONNREFUSED');
  });
});

describe('NetOut', () => {
  it('denies by default: another container and the host namespace are refused', async () => {
    const [toB, toGateway, toHost, ping, fromB] = await Promise.all([
      connectFrom(a, b.ip, 8081),
      // The host itself (allow_host_access is false): rejected, not silently dropped.
      connectFrom(a, a.hostIp, hostServerPort),
      connectFrom(a, hostAddress, hostServerPort),
      pingFrom(a, b.ip),
      // The other way round nothing is allowed either (b has no rules).
      connectFrom(b, a.ip, 8081),
    ]);
    expect(toB).toMatch(/refused/i);
    expect(toGateway).toMatch(/unreachable|refused|no route/i);
    expect(toHost).toMatch(/unreachable|refused|no route/i);
    expect(ping).toBe(false);
    expect(fromB).toMatch(/refused/i);
    // The host's own service is there: it is the rules that refuse.
    expect((await tcpExchange('127.0.0.1', hostServerPort)).data.toString()).toBe('pong\n');
  });

  it('allows one port to a network', async () => {
    await client.netOut({ handle: a.handle, network: `${b.ip}/32`, port: 8081 });
    const [allowed, other] = await Promise.all([connectFrom(a, b.ip, 8081), connectFrom(a, b.ip, 8082)]);
    expect(allowed).toBe('pong');
    expect(other).toMatch(/refused/i);
    const rules = await execa('iptables', ['-w', '-S', `warden-i-${a.id}`]);
    expect(rules.stdout).toContain(`-d ${b.ip}/32 -p tcp -m tcp --dport 8081 -j ACCEPT`);
  });

  it('allows a port range a:b', async () => {
    await client.netOut({ handle: a.handle, network: b.ip, port_range: '8082:8083' });
    const [inside, outside] = await Promise.all([connectFrom(a, b.ip, 8082), connectFrom(a, b.ip, 8084)]);
    expect(inside).toBe('pong');
    expect(outside).toMatch(/refused/i);
  });

  it('allows ICMP', async () => {
    await client.netOut({ handle: a.handle, network: b.ip, protocol: 2, icmp_type: 8, icmp_code: 0 });
    // Only a's rules changed: b still cannot reach a.
    expect(await Promise.all([pingFrom(a, b.ip), pingFrom(b, a.ip)])).toEqual([true, false]);
  });

  it('refuses bad rules with an error and changes nothing', async () => {
    const before = (await execa('iptables', ['-w', '-S', `warden-i-${a.id}`])).stdout;
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{}, /^Please specify network, port, and\/or port_range\.$/],
      [{ port_range: '9000:8000' }, /^Port range maximum must be greater than minimum$/],
      [{ port_range: 'abc' }, /port_range/],
      [{ port: 70000 }, /port/],
      [{ network: 'not-a-network' }, /network/],
      [{ port: 80, protocol: 2 }, /TCP or UDP/],
    ];
    for (const [rule, message] of bad) {
      await expect(client.netOut({ handle: a.handle, ...rule }), JSON.stringify(rule)).rejects.toThrow(message);
    }
    expect((await execa('iptables', ['-w', '-S', `warden-i-${a.id}`])).stdout).toBe(before);
  });

  it('destroy removes every chain, rule and interface of both', async () => {
    await Promise.all([client.destroy({ handle: a.handle }), client.destroy({ handle: b.handle })]);
    expect(await d.hostLeaks()).toEqual([]);
    expect((await tcpExchange('127.0.0.1', PORT_START, '', 2_000)).error).toBe('ECONNREFUSED');
  });
});
