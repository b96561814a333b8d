// NetOut rule validation, the same for every backend.
import { WardenError } from '../errors.ts';
import { NetOutProtocol, type NetOutRequest } from '../protocol/types.ts';
import type { NetOutRule } from '../containers/model.ts';

const CIDR = /^(\d{1,3})(\.\d{1,3}){3}(\/\d{1,2})?$/;

export function validateNetOut(req: NetOutRequest): NetOutRule {
  const rule: NetOutRule = {};
  const has = (k: keyof NetOutRequest) => Object.prototype.hasOwnProperty.call(req, k) && req[k] !== undefined && req[k] !== null;
  if (!has('network') && !has('port') && !has('port_range')) {
    throw new WardenError('Please specify network, port, and/or port_range.');
  }
  const protocol = has('protocol') ? req.protocol! : NetOutProtocol.TCP;
  if (!Object.values(NetOutProtocol).includes(protocol)) throw new WardenError(`unknown protocol ${protocol}`);
  rule.protocol = protocol;
  if (has('network') && req.network !== '') {
    const ok = CIDR.test(req.network!) && req.network!.split(/[./]/).every((n, i) => Number(n) <= (i === 4 ? 32 : 255));
    if (!ok) throw new WardenError(`invalid network ${JSON.stringify(req.network)}: expected an address or a CIDR`);
    rule.network = req.network;
  }
  const portless = protocol === NetOutProtocol.ICMP || protocol === NetOutProtocol.ALL;
  if (has('port')) {
    if (portless) throw new WardenError('a port can only be given for TCP or UDP');
    if (!(req.port! >= 1 && req.port! <= 65535)) throw new WardenError(`invalid port ${req.port}`);
    rule.port = req.port;
  }
  if (has('port_range')) {
    if (portless) throw new WardenError('a port range can only be given for TCP or UDP');
    const m = /^(\d+):(\d+)$/.exec(req.port_range!);
    if (!m) throw new WardenError(`invalid port range ${JSON.stringify(req.port_range)}: expected a:b`);
    const [a, b] = [Number(m[1]), Number(m[2])];
    if (a >= b) throw new WardenError('Port range maximum must be greater than minimum');
    if (a < 1 || b > 65535) {
      throw new WardenError(`invalid port range ${req.port_range}: need 1 <= a < b <= 65535`);
    }
    rule.port_range = req.port_range;
  }
  if (has('icmp_type') || has('icmp_code')) {
    if (protocol !== NetOutProtocol.ICMP) throw new WardenError('icmp_type and icmp_code need protocol ICMP');
    for (const k of ['icmp_type', 'icmp_code'] as const) {
      if (!has(k)) continue;
      const v = req[k]!;
      if (v !== -1 && !(v >= 0 && v <= 255)) throw new WardenError(`invalid ${k} ${v}: expected 0-255 or -1 for any`);
      rule[k] = v;
    }
  }
  if (req.log) rule.log = true;
  return rule;
}
