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
import { formatCidr, formatIpv4, isIpv4, parseCidr, parseIpRange } from '../../../model/ipv4.ts';
import { newBatch, type Batch } from './iptables.ts';
import { validateNetOut } from '../../../model/net-out.ts';
import type { ContainerNetSpec, NetInRule, NetOutRule } from './types.ts';
import { WardenError } from '../../../model/errors.ts';

const PROTOCOLS = ['tcp', 'udp', 'icmp', 'all'] as const;

/** The one NetOut validator (src/model/net-out.ts): also checks rules read back from snapshots. */
export { validateNetOut };

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v);
}

function checkPortNumber(what: string, v: unknown): number {
  if (!isInt(v) || v < 1 || v > 65535) {
    throw new WardenError(`${what} ${JSON.stringify(v)} is out of range: expected 1-65535`, { code: 'invalid' });
  }
  return v;
}

/** Match and target of a net_out rule (checked and normalized by validateNetOut first) in container id's filter chain. */
export function netOutSpec(id: string, given: NetOutRule): string[] {
  const rule = validateNetOut(given);
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
  // Printed from numbers: the text goes into iptables-restore input.
  const ports = rule.port_range !== undefined ? rule.port_range.split(':').map(Number).join(':') : rule.port;
  if (ports !== undefined) args.push('-m', protocol, '--dport', String(ports));
  if (protocol === 'icmp' && rule.icmp_type !== undefined) {
    const code = rule.icmp_code !== undefined ? `/${rule.icmp_code}` : '';
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
