// The one NetOut rule validator, for every backend and for rules read back from
// snapshots. It accepts what the original Warden accepted (and the DEA sends for
// Cloud Foundry security groups): network as an address, a CIDR or a range
// A.B.C.D-E.F.G.H; port, or port_range "min:max" or "port" (port_range wins when
// both are given); ICMP with icmp_type/icmp_code, -1 meaning any; ALL. Where the
// original raised an error, the text is the original's. It returns the rule in
// the record's shape (src/model/records.ts), with what the original ignored
// left out, so the rule's iptables form depends on the record alone.
import { WardenError } from './errors.ts';
import { NetOutProtocol } from '../protocol/types.ts';
import type { NetOutRule } from './records.ts';

const PROTOCOL_NAMES = ['TCP', 'UDP', 'ICMP', 'ALL'] as const;

const OCTET = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const ADDRESS = `${OCTET}(\\.${OCTET}){3}`;
const ADDRESS_RE = new RegExp(`^${ADDRESS}$`);
const CIDR_RE = new RegExp(`^${ADDRESS}/(3[0-2]|[12]?\\d)$`);

function addressValue(s: string): number {
  return s.split('.').reduce((acc, p) => acc * 256 + Number(p), 0);
}

/** An address, a CIDR or a range "first-last" with first <= last (iptables' iprange). */
export function isNetOutNetwork(s: string): boolean {
  if (ADDRESS_RE.test(s) || CIDR_RE.test(s)) return true;
  const [first, last, ...rest] = s.split('-');
  if (rest.length > 0 || first === undefined || last === undefined) return false;
  return ADDRESS_RE.test(first) && ADDRESS_RE.test(last) && addressValue(first) <= addressValue(last);
}

const given = <T>(v: T | null | undefined): v is T => v !== undefined && v !== null;

function checkPort(what: string, v: number): number {
  if (!Number.isInteger(v) || v < 1 || v > 65535) throw new WardenError(`Invalid ${what} ${v}: expected 1-65535`);
  return v;
}

function checkIcmp(what: string, v: unknown): number | undefined {
  if (!given(v) || v === -1) return undefined; // -1: any, as in the original
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 255) {
    throw new WardenError(`Invalid ${what} ${JSON.stringify(v)}: expected 0-255, or -1 for any`);
  }
  return v;
}

/**
 * Validates a NetOut request (or a rule from a snapshot, in the record's old or new form)
 * and returns the rule to apply and record. Throws WardenError with a message for the user.
 */
export function validateNetOut(req: NetOutRule & { handle?: string }): NetOutRule {
  const network = given(req.network) && req.network !== '' ? req.network : undefined;
  const portRange = given(req.port_range) && req.port_range !== '' ? req.port_range : undefined;
  const port = given(req.port) ? req.port : undefined;
  if (network === undefined && port === undefined && portRange === undefined) {
    throw new WardenError('Please specify network, port, and/or port_range.');
  }
  const protocol = given(req.protocol) ? req.protocol : NetOutProtocol.TCP;
  if (!(PROTOCOL_NAMES as readonly unknown[])[protocol] || !Number.isInteger(protocol)) {
    throw new WardenError(`Invalid protocol ${JSON.stringify(req.protocol)}: expected 0 (TCP), 1 (UDP), 2 (ICMP) or 3 (ALL)`);
  }
  const rule: NetOutRule = { protocol };

  if (network !== undefined) {
    if (typeof network !== 'string' || !isNetOutNetwork(network)) {
      throw new WardenError(
        `Invalid network ${JSON.stringify(network)}: expected an IPv4 address, a CIDR like 10.0.0.0/8 or a range like 10.0.0.1-10.0.0.9`,
      );
    }
    rule.network = network;
  }

  // As the original: port_range wins over port; "min:max" needs min < max; a single number is one port.
  if (portRange !== undefined) {
    const m = typeof portRange === 'string' ? /^(\d{1,5})(?::(\d{1,5}))?$/.exec(portRange) : null;
    if (!m) throw new WardenError(`Invalid port_range ${JSON.stringify(portRange)}: expected "port" or "min:max"`);
    const min = checkPort('port_range minimum', Number(m[1]));
    if (m[2] !== undefined) {
      const max = checkPort('port_range maximum', Number(m[2]));
      if (!(min < max)) throw new WardenError('Port range maximum must be greater than minimum');
    }
    rule.port_range = portRange;
  } else if (port !== undefined) {
    rule.port = checkPort('port', port);
  }
  if ((rule.port !== undefined || rule.port_range !== undefined) && protocol !== NetOutProtocol.TCP && protocol !== NetOutProtocol.UDP) {
    throw new WardenError(`A port or port_range needs protocol TCP or UDP, not ${PROTOCOL_NAMES[protocol]}`);
  }

  // The original reads icmp_type/icmp_code for ICMP only, and the code only with a type.
  if (protocol === NetOutProtocol.ICMP) {
    const type = checkIcmp('icmp_type', req.icmp_type);
    const code = checkIcmp('icmp_code', req.icmp_code);
    if (type !== undefined) {
      rule.icmp_type = type;
      if (code !== undefined) rule.icmp_code = code;
    }
  }

  if (given(req.log) && typeof req.log !== 'boolean') throw new WardenError(`Invalid log ${JSON.stringify(req.log)}: expected true or false`);
  if (req.log) rule.log = true;
  return rule;
}
