// The effective config as YAML (`warden-server --check-config FILE`): every key the
// daemon reads, with defaults filled in, in the original's format. Read back, it
// gives the same config, without warnings.
import { Document, type Scalar, type YAMLMap } from 'yaml';
import { parseCidr, parseIpv4 } from '../model/ipv4.ts';
import type { WardenConfig } from './types.ts';

export function formatConfig(config: WardenConfig): string {
  const { source: _source, warnings: _warnings, ...plain } = config;
  const { pool_network, pool_start_address, pool_size, ...network } = plain.network;
  // One form of the network pool: both would warn when read back (the older form wins).
  const exact = isExactBlock(pool_network, pool_start_address, pool_size);
  const pool = exact ? { pool_network } : { pool_start_address, pool_size };
  // YAML 1.1, as the config is read: the file mode prints as 0755.
  const doc = new Document({ ...plain, network: { ...pool, ...network } }, { version: '1.1' });
  const mode = doc.getIn(['server', 'unix_domain_permissions'], true) as Scalar | undefined;
  if (mode) mode.format = 'OCT';
  const net = doc.get('network', true) as YAMLMap | undefined;
  const first = net?.items[0];
  if (first && exact) (first.key as Scalar).commentBefore = ` ${pool_size} /30 networks from ${pool_start_address}`;
  return doc.toString({ nullStr: '~', lineWidth: 0 });
}

function isExactBlock(cidrText: string, start: string, size: number): boolean {
  const cidr = parseCidr(cidrText);
  return cidr !== undefined && cidr.address === parseIpv4(start) && 2 ** (32 - cidr.prefix) / 4 === size;
}
