// The one NetOut validator (src/model/net-out.ts) and the iptables form of its rules:
// what the original Warden accepted and refused (with its words), the DEA's
// security-group rules, and rules read back from snapshots in the old record shape.
import { describe, expect, it } from 'vitest';
import { validateNetOut } from '../../src/model/net-out.ts';
import { netOutSpec } from '../../src/backends/linux/network/rules.ts';
import { loopbackResolver, resolvConfFor } from '../../src/backends/linux/rootfs/etc-files.ts';
import { WardenError } from '../../src/model/errors.ts';
import type { NetOutRule } from '../../src/model/records.ts';

const TCP = 0, UDP = 1, ICMP = 2, ALL = 3;

describe('validateNetOut', () => {
  it('refuses a rule without network, port or port_range with the original words', () => {
    for (const rule of [{}, { handle: 'h' }, { protocol: ICMP }, { network: '', port_range: '' }, { protocol: ALL, icmp_type: 8 }] as NetOutRule[]) {
      expect(() => validateNetOut(rule), JSON.stringify(rule)).toThrow(new WardenError('Please specify network, port, and/or port_range.'));
    }
  });

  it('needs the port range maximum above the minimum, with the original words', () => {
    for (const port_range of ['2002:2000', '80:80']) {
      expect(() => validateNetOut({ port_range })).toThrow(new WardenError('Port range maximum must be greater than minimum'));
    }
  });

  it('takes what the original took: address, CIDR or range; port; port_range "min:max" or "port"', () => {
    expect(validateNetOut({ handle: 'h', network: '4.2.2.2' } as NetOutRule)).toEqual({ protocol: TCP, network: '4.2.2.2' });
    expect(validateNetOut({ port: 1234 })).toEqual({ protocol: TCP, port: 1234 });
    expect(validateNetOut({ network: '4.2.2.2', port: 1234 })).toEqual({ protocol: TCP, network: '4.2.2.2', port: 1234 });
    expect(validateNetOut({ network: '10.0.0.0/8', port_range: '2000:2002', protocol: UDP })).toEqual({
      protocol: UDP, network: '10.0.0.0/8', port_range: '2000:2002',
    });
    expect(validateNetOut({ network: '10.0.0.0-10.255.255.255', port_range: '53' })).toEqual({
      protocol: TCP, network: '10.0.0.0-10.255.255.255', port_range: '53',
    });
    // port_range wins over port, as in the original.
    expect(validateNetOut({ port: 80, port_range: '8080:8090' })).toEqual({ protocol: TCP, port_range: '8080:8090' });
  });

  it('ICMP: -1 means any type or code; a code without a type is ignored; non-ICMP rules ignore both', () => {
    expect(validateNetOut({ network: '10.0.0.1', protocol: ICMP, icmp_type: 8, icmp_code: 0 })).toEqual({
      protocol: ICMP, network: '10.0.0.1', icmp_type: 8, icmp_code: 0,
    });
    expect(validateNetOut({ network: '10.0.0.1', protocol: ICMP, icmp_type: -1, icmp_code: -1 })).toEqual({ protocol: ICMP, network: '10.0.0.1' });
    expect(validateNetOut({ network: '10.0.0.1', protocol: ICMP, icmp_type: 3, icmp_code: -1 })).toEqual({ protocol: ICMP, network: '10.0.0.1', icmp_type: 3 });
    expect(validateNetOut({ network: '10.0.0.1', protocol: ICMP, icmp_type: -1, icmp_code: 3 })).toEqual({ protocol: ICMP, network: '10.0.0.1' });
    expect(validateNetOut({ network: '10.0.0.1', protocol: TCP, icmp_type: 8, icmp_code: 0 })).toEqual({ protocol: TCP, network: '10.0.0.1' });
    expect(validateNetOut({ network: '0.0.0.0/0', protocol: ALL, log: true })).toEqual({ protocol: ALL, network: '0.0.0.0/0', log: true });
  });

  it('refuses what iptables would refuse, saying what is wrong', () => {
    const cases: Array<[NetOutRule, RegExp]> = [
      [{ network: '10.0.0.300' }, /Invalid network "10.0.0.300": expected an IPv4 address, a CIDR .* or a range/],
      [{ network: '10.0.0.0/33' }, /Invalid network/],
      [{ network: '10.0.0.9-10.0.0.1' }, /Invalid network/],
      [{ network: 'example.com' }, /Invalid network/],
      [{ port: 0 }, /Invalid port 0: expected 1-65535/],
      [{ port: 70000 }, /Invalid port 70000/],
      [{ port_range: '80-90' }, /Invalid port_range "80-90": expected "port" or "min:max"/],
      [{ port_range: '1:70000' }, /Invalid port_range maximum 70000/],
      [{ port: 53, protocol: ICMP }, /needs protocol TCP or UDP, not ICMP/],
      [{ port_range: '1:2', protocol: ALL }, /needs protocol TCP or UDP, not ALL/],
      [{ network: '10.0.0.1', protocol: ICMP, icmp_type: 256 }, /Invalid icmp_type 256: expected 0-255, or -1 for any/],
      [{ network: '10.0.0.1', protocol: 7 as never }, /Invalid protocol 7/],
    ];
    for (const [rule, message] of cases) {
      expect(() => validateNetOut(rule), JSON.stringify(rule)).toThrow(WardenError);
      expect(() => validateNetOut(rule), JSON.stringify(rule)).toThrow(message);
    }
  });

  it('reads rules recorded by earlier versions (the same record shape, -1 kept, port and port_range both)', () => {
    const old: NetOutRule[] = [
      { network: '10.0.0.0/8', protocol: TCP },
      { network: '10.0.0.1', protocol: ICMP, icmp_type: -1, icmp_code: -1 },
      { network: '10.0.0.1', port: 80, protocol: TCP, log: true },
      { port_range: '8080:9090', protocol: UDP },
    ];
    for (const r of old) expect(() => validateNetOut(r)).not.toThrow();
    // Validating again changes nothing: a recorded rule restores to the same iptables rule.
    for (const r of old) expect(validateNetOut(validateNetOut(r))).toEqual(validateNetOut(r));
  });
});

describe('netOutSpec', () => {
  const id = 'abc';
  it('ranges use the iprange match; ports come from numbers; ICMP type/code; ALL has no protocol', () => {
    expect(netOutSpec(id, { network: '10.0.0.0-10.0.0.255', port: 80 })).toEqual([
      '-m', 'iprange', '--dst-range', '10.0.0.0-10.0.0.255', '-p', 'tcp', '-m', 'tcp', '--dport', '80', '-j', 'ACCEPT',
    ]);
    expect(netOutSpec(id, { port_range: '0080:0090', protocol: UDP })).toEqual(['-p', 'udp', '-m', 'udp', '--dport', '80:90', '-j', 'ACCEPT']);
    expect(netOutSpec(id, { network: '10.0.0.1', protocol: ICMP, icmp_type: 8, icmp_code: 0, log: true })).toEqual([
      '-d', '10.0.0.1/32', '-p', 'icmp', '-m', 'icmp', '--icmp-type', '8/0', '-g', 'warden-i-abc-log',
    ]);
    expect(netOutSpec(id, { network: '10.0.0.1', protocol: ICMP, icmp_type: -1, icmp_code: -1 })).toEqual(['-d', '10.0.0.1/32', '-p', 'icmp', '-j', 'ACCEPT']);
    expect(netOutSpec(id, { network: '10.1.0.0/16', protocol: ALL })).toEqual(['-d', '10.1.0.0/16', '-j', 'ACCEPT']);
  });

  it('never builds a rule from an invalid record', () => {
    expect(() => netOutSpec(id, { network: '10.0.0.1 -j DROP' })).toThrow(/Invalid network/);
    expect(() => netOutSpec(id, { port_range: '1:2\n-A INPUT' })).toThrow(/Invalid port_range/);
  });
});

describe('resolv.conf for a container', () => {
  const stub = '# This is /run/systemd/resolve/stub-resolv.conf\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n';
  it('configured servers as given, one line each', () => {
    expect(resolvConfFor(['10.0.0.2', 'peter'], stub, '10.254.0.1')).toBe('nameserver 10.0.0.2\nnameserver peter\n');
  });
  it('a loopback resolver on the host: the container host end', () => {
    expect(loopbackResolver(stub)).toBe('127.0.0.53');
    expect(loopbackResolver('nameserver 127.0.0.1\n')).toBe('127.0.0.1');
    expect(resolvConfFor([], stub, '10.254.0.1')).toBe('nameserver 10.254.0.1\n');
  });
  it('otherwise the host file as it is', () => {
    const host = '# managed\nsearch example.org\nnameserver 10.1.2.3\nnameserver 127.0.0.1\n';
    expect(loopbackResolver(host)).toBeUndefined();
    expect(loopbackResolver('nameserver ::1\n')).toBeUndefined();
    expect(resolvConfFor([], host, '10.254.0.1')).toBe(host);
  });
});
