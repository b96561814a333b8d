// What a container's rules look like: net_out validation and the iptables
// specs for net_out, net_in and the per-container chains.
//
// filter  FORWARD -i w-+ / -o w-+ -> warden-forward
//           warden-forward: RELATED,ESTABLISHED accept; DNAT to a container (net_in) accept;
//                           other traffic towards containers -> host policy;
//                           -j warden-instances; DROP (a w-* interface without a chain)
//           warden-instances: -i w-<id>-0 -g warden-i-<id>      (one per container)
//           warden-i-<id>:  net_out rules (newest first) -j ACCEPT or -g warden-i-<id>-log;
//                           -g warden-default (allow/deny networks, then REJECT)
// nat     PREROUTING/OUTPUT (local destinations) -> warden-prerouting
//           warden-prerouting: -p tcp -j warden-i-<id>          (one per container)
//           warden-i-<id>:  -p tcp --dport H -j DNAT --to-destination C:P   (net_in)
import { CHAINS, hostIface, instanceChain, instanceLogChain } from './names.ts';
import { formatCidr, formatIpv4, isIpv4, parseCidr, parseIpRange } from './ipv4.ts';
import { newBatch, type Batch } from './iptables.ts';
import type { ContainerNetSpec, NetInRule, NetOutRule } from './types.ts';

const PROTOCOLS = ['tcp', 'udp', 'icmp', 'all'] as const;

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v);
}

function checkPortNumber(what: string, v: unknown): number {
  if (!isInt(v) || v < 1 || v > 65535) {
    throw new Error(`${what} ${JSON.stringify(v)} is out of range: expected 1-65535`);
  }
  return v;
}

/** Throws an Error whose message tells the user what to change; returns nothing when the rule is valid. */
export function validateNetOut(rule: NetOutRule): void {
  const protocol = rule.protocol ?? 0;
  if (!isInt(protocol) || protocol < 0 || protocol > 3) {
    throw new Error(`net_out: protocol ${JSON.stringify(rule.protocol)} is unknown: use 0 (TCP), 1 (UDP), 2 (ICMP) or 3 (ALL)`);
  }
  const hasNetwork = rule.network !== undefined && rule.network !== '';
  const hasPort = rule.port !== undefined;
  const hasRange = rule.port_range !== undefined && rule.port_range !== '';
  if (!hasNetwork && !hasPort && !hasRange) {
    throw new Error('Please specify network, port, and/or port_range.');
  }
  if (hasNetwork && !parseCidr(rule.network!) && !parseIpRange(rule.network!)) {
    throw new Error(
      `net_out: network ${JSON.stringify(rule.network)} is not an IPv4 address, a CIDR like 10.0.0.0/8 or a range like 10.0.0.1-10.0.0.9`,
    );
  }
  if (hasPort && hasRange) throw new Error('net_out: give either port or port_range, not both');
  if ((hasPort || hasRange) && protocol !== 0 && protocol !== 1) {
    throw new Error(`net_out: port and port_range need protocol TCP or UDP, not ${PROTOCOLS[protocol]!.toUpperCase()}`);
  }
  if (hasPort) checkPortNumber('net_out: port', rule.port);
  if (hasRange) {
    const m = /^(\d{1,5}):(\d{1,5})$/.exec(rule.port_range!);
    const lo = m ? Number(m[1]) : NaN;
    const hi = m ? Number(m[2]) : NaN;
    if (m && lo >= hi) throw new Error('Port range maximum must be greater than minimum');
    if (!m || lo < 1 || hi > 65535) {
      throw new Error(`net_out: port_range ${JSON.stringify(rule.port_range)} must be "a:b" with 1 <= a < b <= 65535`);
    }
  }
  for (const [name, v] of [['icmp_type', rule.icmp_type], ['icmp_code', rule.icmp_code]] as const) {
    if (v === undefined) continue;
    if (!isInt(v) || v < -1 || v > 255) {
      throw new Error(`net_out: ${name} ${JSON.stringify(v)} is out of range: expected -1 (any) or 0-255`);
    }
    if (v !== -1 && protocol !== 2) throw new Error(`net_out: ${name} needs protocol ICMP`);
  }
  const anyType = rule.icmp_type === undefined || rule.icmp_type === -1;
  if (anyType && rule.icmp_code !== undefined && rule.icmp_code !== -1) {
    throw new Error('net_out: icmp_code needs an icmp_type (icmp_type -1 allows every type and code)');
  }
  if (rule.log !== undefined && typeof rule.log !== 'boolean') {
    throw new Error(`net_out: log must be true or false, not ${JSON.stringify(rule.log)}`);
  }
}

/** Match and target of a (validated) net_out rule in container id's filter chain. */
export function netOutSpec(id: string, rule: NetOutRule): string[] {
  const protocol = PROTOCOLS[rule.protocol ?? 0]!;
  const args: string[] = [];
  if (rule.network) {
    const cidr = parseCidr(rule.network);
    if (cidr) {
      if (cidr.prefix > 0) args.push('-d', formatCidr(cidr));
    } else {
      const range = parseIpRange(rule.network)!;
      args.push('-m', 'iprange', '--dst-range', `${formatIpv4(range.start)}-${formatIpv4(range.end)}`);
    }
  }
  if (protocol !== 'all') args.push('-p', protocol);
  if (rule.port !== undefined) args.push('-m', protocol, '--dport', String(rule.port));
  if (rule.port_range) args.push('-m', protocol, '--dport', rule.port_range);
  if (protocol === 'icmp' && rule.icmp_type !== undefined && rule.icmp_type !== -1) {
    const code = rule.icmp_code !== undefined && rule.icmp_code !== -1 ? `/${rule.icmp_code}` : '';
    args.push('-m', 'icmp', '--icmp-type', `${rule.icmp_type}${code}`);
  }
  args.push(...(rule.log ? ['-g', instanceLogChain(id)] : ['-j', 'ACCEPT']));
  return args;
}

export function checkNetIn(spec: ContainerNetSpec, hostPort: number, containerPort: number): void {
  checkPortNumber('net_in: host_port', hostPort);
  checkPortNumber('net_in: container_port', containerPort);
  if (!isIpv4(spec.containerIp)) throw new Error(`net_in: container ip ${JSON.stringify(spec.containerIp)} is not an IPv4 address`);
}

/** DNAT of TCP to any local address on hostPort to the container (the chain is only reached for local destinations). */
export function netInSpec(spec: ContainerNetSpec, hostPort: number, containerPort: number): string[] {
  return ['-p', 'tcp', '-m', 'tcp', '--dport', String(hostPort), '-j', 'DNAT', '--to-destination', `${spec.containerIp}:${containerPort}`];
}

/** The dispatch rule in warden-instances, in `iptables -S` form without "-A chain". */
export function instanceJumpSpec(id: string): string {
  return `-i ${hostIface(id)} -g ${instanceChain(id)}`;
}

/** The dispatch rule in nat warden-prerouting, in `iptables -S` form without "-A chain". */
export function natJumpSpec(id: string): string {
  return `-p tcp -j ${instanceChain(id)}`;
}

/**
 * A batch that (re)creates container id's chains with exactly these rules; declaring a chain
 * in iptables-restore --noflush empties it, so this is idempotent. Jumps to the chains are not included.
 */
export function instanceChainsBatch(spec: ContainerNetSpec, netIn: readonly NetInRule[], netOut: readonly NetOutRule[]): Batch {
  const b = newBatch();
  const chain = instanceChain(spec.id);
  const logChain = instanceLogChain(spec.id);
  b.filter.push(
    `:${chain} - [0:0]`,
    `:${logChain} - [0:0]`,
    `-A ${logChain} -m conntrack --ctstate INVALID,NEW,UNTRACKED -j LOG --log-prefix "${chain} "`,
    `-A ${logChain} -j ACCEPT`,
  );
  // net_out inserts each new rule first; replaying in reverse gives the same order.
  for (const rule of [...netOut].reverse()) b.filter.push(`-A ${chain} ${netOutSpec(spec.id, rule).join(' ')}`);
  b.filter.push(`-A ${chain} -g ${CHAINS.default}`);
  b.nat.push(`:${chain} - [0:0]`);
  for (const r of netIn) b.nat.push(`-A ${chain} ${netInSpec(spec, r.host_port, r.container_port).join(' ')}`);
  return b;
}
