// Networking as the original Warden did it, through the real daemon (Linux backend):
// NetOut as the DEA and Cloud Foundry security groups use it (address, CIDR and
// range networks; TCP, UDP, ICMP with type/code, ALL), pings from unprivileged jobs,
// ICMP to the host with allow_host_access, resolv.conf and DNS, and the ifb's MTU.
// The checks of the original's linux_spec.rb net_out and resolv.conf sections, in our words.
//
// Traffic only goes to addresses of this file's containers, services the test opens on
// their host ends, and a DNS responder on a loopback address of this host; the egress
// guard drops anything from the pools that would leave the machine.
// Pools 10.247.48.0/24 and 10.247.49.0/24, host ports 34000-34199, uids 47000-47199.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import net from 'node:net';
import { chmod, cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { execa } from 'execa';
import { LinuxDaemon, waitFor, waitListening, type Box } from '../support/linux/linux-daemon.ts';
import type { WardenClient } from '../../src/client/client.ts';
import { NetOutProtocol } from '../../src/protocol/types.ts';

const { UDP, ICMP, ALL } = NetOutProtocol;
/** The host's "loopback resolver" for daemon 1 (as systemd-resolved's 127.0.0.53 would be). */
const RESOLVER = '127.47.48.53';
const TOOLS = '/opt/h4-tools';


let tools: string; // host folder with perl and its libraries, bind-mounted read-only
let d1: LinuxDaemon;
let c1: WardenClient;

function box(d: LinuxDaemon, client: WardenClient): Promise<Box> {
  return d.box(client, { bind_mounts: [{ src_path: tools, dst_path: TOOLS, mode: 0 }] });
}

/** Runs script as the container's unprivileged user (as the DEA runs apps), on a connection of its own. */
async function runIn(d: LinuxDaemon, x: Box, script: string): Promise<string> {
  const k = await d.daemon.client();
  try {
    const r = await d.run(k, x.handle, script);
    return `${r.stdout}${r.stderr}`;
  } finally {
    await k.close();
  }
}

/** TCP from inside x: 'pong' or what went wrong. */
async function tcpFrom(d: LinuxDaemon, x: Box, ip: string, port: number): Promise<string> {
  const out = await runIn(d, x, `timeout 3 bash -c 'exec 3<>/dev/tcp/$0/$1 && cat <&3' ${ip} ${port} 2>&1; echo "rc=$?"`);
  return out.includes('pong') ? 'pong' : out.trim();
}

/**
 * One ICMP echo from inside x, unprivileged: an ICMP datagram socket (what iputils ping
 * uses without CAP_NET_RAW), from perl, since the test rootfs's busybox ping needs raw sockets.
 */
const PING = String.raw`
my $ip = shift;
socket(my $s, 2, 2, 1) or do { print "socket: $!\n"; exit 2 };
send($s, pack("C C n n n", 8, 0, 0, 0, 1) . "warden", 0, pack("S n C4 x8", 2, 0, split(/\./, $ip))) or do { print "send: $!\n"; exit 3 };
my $rin = ""; vec($rin, fileno($s), 1) = 1;
if (select(my $rout = $rin, undef, undef, 2) > 0) {
  my $from = recv($s, my $buf, 1500, 0);
  if (defined $from && length($buf) && unpack("C", $buf) == 0) { print "echo reply\n"; exit 0 }
  print "error: $!\n"; exit 1;
}
print "timeout\n"; exit 1;
`;
async function pingFrom(d: LinuxDaemon, x: Box, ip: string): Promise<boolean> {
  const out = await runIn(d, x, `${PERL} -e '${PING}' ${ip}; echo "rc=$?"`);
  return out.includes("rc=0");
}

const PERL = `env LC_ALL=C ${TOOLS}/ld.so --library-path ${TOOLS} ${TOOLS}/perl`;

/** A UDP datagram from x to y's port; true when y's listener (udpListen) got it. */
async function udpFrom(d: LinuxDaemon, x: Box, y: Box, port: number): Promise<boolean> {
  const token = `u${Math.random().toString(36).slice(2, 10)}`;
  await runIn(d, x, `echo ${token} > /dev/udp/${y.ip}/${port}`);
  return waitFor(`udp ${token}`, async () => (await runIn(d, y, `cat /tmp/udp-${port}`)).includes(token), 3_000).catch(() => false);
}

/** Busybox's nc here has no -u: a perl UDP listener that writes what it gets to /tmp/udp-<port>. */
async function udpListen(d: LinuxDaemon, client: WardenClient, x: Box, port: number): Promise<void> {
  const listen = `socket(my $s, 2, 2, 17) or die "socket: $!"; bind($s, pack("S n x4 x8", 2, shift)) or die "bind: $!"; $| = 1; while (defined recv($s, my $b, 1500, 0)) { print $b }`;
  await client.spawn({ handle: x.handle, script: `exec ${PERL} -e '${listen}' ${port} > /tmp/udp-${port}` });
  await waitFor(`udp listener ${port}`, async () => {
    const r = await execa('nsenter', [`--net=/proc/${x.initPid}/ns/net`, '--', 'ss', '-Hlun', `sport = :${port}`], { reject: false });
    return r.stdout.trim() !== '';
  });
}

async function tcpListen(client: WardenClient, x: Box, ports: number[]): Promise<void> {
  await client.spawn({ handle: x.handle, script: `for p in ${ports.join(' ')}; do nc -ll -p $p -e echo pong & done; wait` });
  for (const p of ports) await waitListening(x.initPid, p);
}

/** A DNS responder on the "host's loopback resolver": answers every A query with 10.247.48.77. */
function dnsResponder(): Promise<{ socket: dgram.Socket; queries: string[] }> {
  const socket = dgram.createSocket('udp4');
  const queries: string[] = [];
  socket.on('message', (msg, from) => {
    // Header (12 bytes), then the question: labels, type, class.
    let i = 12;
    const labels: string[] = [];
    while (msg[i]! > 0) {
      labels.push(msg.subarray(i + 1, i + 1 + msg[i]!).toString());
      i += msg[i]! + 1;
    }
    const qtype = msg.readUInt16BE(i + 1);
    const question = msg.subarray(12, i + 5);
    queries.push(`${from.address} ${labels.join('.')} ${qtype}`);
    const isA = qtype === 1;
    const header = Buffer.from([msg[0]!, msg[1]!, 0x81, 0x80, 0, 1, 0, isA ? 1 : 0, 0, 0, 0, 0]);
    const answer = isA ? Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 247, 48, 77]) : Buffer.alloc(0);
    socket.send(Buffer.concat([header, question, answer]), from.port, from.address);
  });
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(53, RESOLVER, () => resolve({ socket, queries }));
  });
}

interface HostServices {
  tcpPort: number;
  udpPort: number;
  received: string[];
  close(): void;
}

/** A TCP 'pong' service and a UDP sink on the host, on a container's host end address. */
async function hostServices(address: string): Promise<HostServices> {
  const tcp = net.createServer((sock) => sock.end('pong\n'));
  await new Promise<void>((r) => tcp.listen(0, address, r));
  const udp = dgram.createSocket('udp4');
  const received: string[] = [];
  udp.on('message', (m) => received.push(m.toString()));
  await new Promise<void>((r) => udp.bind(0, address, r));
  return {
    tcpPort: (tcp.address() as net.AddressInfo).port,
    udpPort: udp.address().port,
    received,
    close: () => {
      tcp.close();
      udp.close();
    },
  };
}

async function udpToHost(d: LinuxDaemon, x: Box, host: HostServices): Promise<boolean> {
  const token = `h${Math.random().toString(36).slice(2, 10)}`;
  await runIn(d, x, `echo ${token} > /dev/udp/${x.hostIp}/${host.udpPort}`);
  return waitFor(`udp ${token} on the host`, () => host.received.some((m) => m.includes(token)), 2_000).catch(() => false);
}

/** perl and the libraries it links, for the unprivileged ping. */
async function makeTools(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'h4-net-tools-'));
  const perl = (await execa('bash', ['-c', 'command -v perl'])).stdout.trim();
  const ldd = (await execa('ldd', [perl])).stdout;
  const libs = [...ldd.matchAll(/(\/\S+)/g)].map((m) => m[1]!);
  await cp(perl, join(dir, 'perl'), { dereference: true });
  // The dynamic loader under a fixed name (ld-linux-x86-64.so.2, ld-linux-aarch64.so.1, ...).
  for (const lib of libs) await cp(lib, join(dir, /\/ld-linux[^/]*$/.test(lib) ? 'ld.so' : basename(lib)), { dereference: true });
  await chmod(dir, 0o755); // vcap reads it
  return dir;
}

let resolvConf: string;

beforeAll(async () => {
  tools = await makeTools();
  const dir = await mkdtemp(join(tmpdir(), 'h4-net-resolv-'));
  resolvConf = join(dir, 'resolv.conf');
  // What systemd-resolved leaves in /etc/resolv.conf, with our loopback address.
  await writeFile(resolvConf, `# stub resolver\nnameserver ${RESOLVER}\noptions edns0 trust-ad\nsearch .\n`);
  d1 = await LinuxDaemon.start({
    pool: '10.247.48.0/24', portStart: 34000, uidStart: 47000,
    network: { mtu: 1400, host_resolv_conf: resolvConf, allow_host_access: false },
  });
  c1 = await d1.client();
});

afterAll(async () => {
  const problems = d1 ? await d1.cleanup() : [];
  if (tools) await rm(tools, { recursive: true, force: true });
  if (resolvConf) await rm(join(resolvConf, '..'), { recursive: true, force: true });
  expect(problems).toEqual([]);
});

describe('NetOut as the DEA uses it', () => {
  let a: Box;
  let b: Box;
  let c: Box;

  beforeAll(async () => {
    [a, b, c] = await Promise.all([box(d1, c1), box(d1, c1), box(d1, c1)]);
    await Promise.all([tcpListen(c1, a, [8080]), tcpListen(c1, b, [8080, 8081]), tcpListen(c1, c, [8080, 8081])]);
    await Promise.all([udpListen(d1, c1, a, 9090), udpListen(d1, c1, b, 9091)]);
  });

  it('refuses what the original refused, with its words, and takes what it took', async () => {
    await expect(c1.netOut({ handle: c.handle })).rejects.toThrow(/^Please specify network, port, and\/or port_range\.$/);
    await expect(c1.netOut({ handle: c.handle, protocol: ICMP, icmp_type: -1, icmp_code: -1 })).rejects.toThrow(
      /^Please specify network, port, and\/or port_range\.$/,
    );
    await expect(c1.netOut({ handle: c.handle, port_range: '2002:2000' })).rejects.toThrow(/^Port range maximum must be greater than minimum$/);
    await expect(c1.netOut({ handle: c.handle, port_range: '2000:2000' })).rejects.toThrow(/^Port range maximum must be greater than minimum$/);
    // Accepted as in the original's argument checks (the addresses are never contacted).
    await c1.netOut({ handle: c.handle, network: '4.2.2.2' });
    await c1.netOut({ handle: c.handle, port: 1234 });
    await c1.netOut({ handle: c.handle, network: '4.2.2.2', port: 1234 });
  });

  it('a range A-B: allows the addresses in it and nothing else', async () => {
    const net = b.ip.replace(/\.\d+$/, `.${Number(b.ip.split('.')[3]) - 2}`);
    const last = b.ip.replace(/\.\d+$/, `.${Number(b.ip.split('.')[3]) + 1}`);
    await c1.netOut({ handle: a.handle, network: `${net}-${last}`, port: 8080 });
    expect(await Promise.all([tcpFrom(d1, a, b.ip, 8080), tcpFrom(d1, a, c.ip, 8080)])).toEqual(['pong', expect.stringMatching(/refused/i)]);
    const rules = await execa('iptables', ['-w', '-S', `warden-i-${a.id}`]);
    expect(rules.stdout).toContain(`-p tcp -m iprange --dst-range ${net}-${last} -m tcp --dport 8080 -j ACCEPT`);
    // The whole /24 as a range, with a one-port port_range (the original took "N" as a port).
    await c1.netOut({ handle: a.handle, network: '10.247.48.0-10.247.48.255', port_range: '8081' });
    expect(await Promise.all([tcpFrom(d1, a, b.ip, 8081), tcpFrom(d1, a, c.ip, 8081)])).toEqual(['pong', 'pong']);
  });

  it('a CIDR covers its subnet only', async () => {
    await c1.netOut({ handle: b.handle, network: `${c.ip}/30`, port: 8081 });
    expect(await Promise.all([tcpFrom(d1, b, c.ip, 8081), tcpFrom(d1, b, a.ip, 8081)])).toEqual(['pong', expect.stringMatching(/refused/i)]);
  });

  it('ICMP: unprivileged pings pass an echo-request rule (and -1/-1), not a rule of another type or code', async () => {
    // Nothing allowed yet: neither another container nor the host end (allow_host_access is false).
    const host = await hostServices(a.hostIp);
    try {
      expect(
        await Promise.all([pingFrom(d1, a, b.ip), pingFrom(d1, a, a.hostIp), tcpFrom(d1, a, a.hostIp, host.tcpPort), udpToHost(d1, a, host)]),
      ).toEqual([false, false, expect.not.stringMatching(/pong/), false]);
    } finally {
      host.close();
    }
    await c1.netOut({ handle: a.handle, network: b.ip, protocol: ICMP, icmp_type: 8, icmp_code: 0 });
    expect(await pingFrom(d1, a, b.ip)).toBe(true);

    await c1.netOut({ handle: c.handle, network: b.ip, protocol: ICMP, icmp_type: 0, icmp_code: 0 }); // echo reply
    await c1.netOut({ handle: c.handle, network: b.ip, protocol: ICMP, icmp_type: 8, icmp_code: 8 }); // bogus code
    expect(await pingFrom(d1, c, b.ip)).toBe(false);
    await c1.netOut({ handle: c.handle, network: b.ip, protocol: ICMP, icmp_type: -1, icmp_code: -1 });
    expect(await pingFrom(d1, c, b.ip)).toBe(true);
  });

  it('ALL: TCP, UDP and ICMP to the network', async () => {
    expect(await Promise.all([tcpFrom(d1, b, a.ip, 8080), udpFrom(d1, b, a, 9090), pingFrom(d1, b, a.ip)])).toEqual([
      expect.stringMatching(/refused/i), false, false,
    ]);
    await c1.netOut({ handle: b.handle, network: a.ip, protocol: ALL });
    expect(await Promise.all([tcpFrom(d1, b, a.ip, 8080), udpFrom(d1, b, a, 9090), pingFrom(d1, b, a.ip)])).toEqual(['pong', true, true]);
  });

  it('UDP to one port', async () => {
    expect(await udpFrom(d1, a, b, 9091)).toBe(false);
    await c1.netOut({ handle: a.handle, network: `${b.ip}/32`, port: 9091, protocol: UDP });
    expect(await udpFrom(d1, a, b, 9091)).toBe(true);
  });

  it('after a drain and a restart, the rules are back (a rule removed by hand included)', async () => {
    const net = b.ip.replace(/\.\d+$/, `.${Number(b.ip.split('.')[3]) - 2}`);
    const last = b.ip.replace(/\.\d+$/, `.${Number(b.ip.split('.')[3]) + 1}`);
    await execa('iptables', ['-w', '-D', `warden-i-${a.id}`, '-p', 'tcp', '-m', 'iprange', '--dst-range', `${net}-${last}`, '-m', 'tcp', '--dport', '8080', '-j', 'ACCEPT']);
    expect(await tcpFrom(d1, a, b.ip, 8080)).toMatch(/refused/i);
    expect(await d1.daemon.drain()).toBe(0);
    await d1.restart();
    c1 = await d1.client();
    expect(await Promise.all([tcpFrom(d1, a, b.ip, 8080), tcpFrom(d1, a, c.ip, 8081), pingFrom(d1, a, b.ip), pingFrom(d1, c, b.ip)])).toEqual([
      'pong', 'pong', true, true,
    ]);
  });

  it('the ifb w-<id>-2 exists from the create, up, with the container MTU, and stays through a restart and a bandwidth limit', async () => {
    const fresh = await box(d1, c1);
    const ifb = (await execa('ip', ['-o', 'link', 'show', `w-${fresh.id}-2`])).stdout;
    expect(ifb).toMatch(/ mtu 1400 /);
    expect(ifb).toMatch(/<[^>]*\bUP\b[^>]*>/);
    // a was made before the restart above: recovery clears shaping, not the ifb.
    expect((await execa('ip', ['-o', 'link', 'show', `w-${a.id}-2`])).stdout).toMatch(/ mtu 1400 /);
    await c1.limitBandwidth({ handle: a.handle, rate: 1_000_000, burst: 100_000 });
    for (const dev of [`w-${a.id}-0`, `w-${a.id}-2`]) {
      expect((await execa('ip', ['-o', 'link', 'show', dev])).stdout).toMatch(/ mtu 1400 /);
    }
  });
});

describe('DNS', () => {
  it('a host on a loopback resolver: the container asks its host end, and the query reaches the resolver', async () => {
    const { socket, queries } = await dnsResponder();
    try {
      const x = await box(d1, c1);
      expect(await runIn(d1, x, 'cat /etc/resolv.conf')).toBe(`nameserver ${x.hostIp}\n`);
      // No net_out rule and no host access: DNS to the host end still works.
      const out = await runIn(d1, x, 'nslookup h4.test; echo "rc=$?"');
      expect(out).toContain('10.247.48.77');
      expect(queries).toContain(`${x.ip} h4.test 1`);
      // Other ports of the host end stay closed to the container.
      expect(await tcpFrom(d1, x, x.hostIp, 22)).not.toBe('pong');
    } finally {
      socket.close();
    }
  });
});

describe('allow_host_access and dns_servers as given', () => {
  let d2: LinuxDaemon;
  let c2: WardenClient;
  afterAll(async () => {
    const problems = d2 ? await d2.cleanup() : [];
    expect(problems).toEqual([]);
  });

  it('starts with a dns_servers entry that is not an address, writes each as given and warns', async () => {
    d2 = await LinuxDaemon.start({
      pool: '10.247.49.0/24', portStart: 34100, uidStart: 47100,
      network: { allow_host_access: true, dns_servers: ['10.247.49.250', 'peter', 'frank'] },
    });
    c2 = await d2.client();
    const x = await box(d2, c2);
    expect(await runIn(d2, x, 'cat /etc/resolv.conf')).toBe('nameserver 10.247.49.250\nnameserver peter\nnameserver frank\n');
    expect(d2.daemon.log()).toMatch(/dns_servers\[1\] \\?"peter\\?" is not an IP address/);
    // The host: reachable without any rule, over TCP, UDP and ICMP.
    const host = await hostServices(x.hostIp);
    try {
      expect(await Promise.all([tcpFrom(d2, x, x.hostIp, host.tcpPort), udpToHost(d2, x, host), pingFrom(d2, x, x.hostIp)])).toEqual([
        'pong', true, true,
      ]);
    } finally {
      host.close();
    }
  });
});
