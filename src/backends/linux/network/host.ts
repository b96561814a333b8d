// Host-wide network setup: kernel settings and the base iptables chains every
// container's rules hang off (see rules.ts for the whole layout).
//
// Rules that depend on the configuration carry `-s <pool>`, so daemons (or test
// suites) with different pools can share a host: setting up one pool rewrites
// only its own rules, and the pool's MASQUERADE rule doubles as its registration.
import { readdir } from 'node:fs/promises';
import { CHAINS, IFACE_MATCH, INSTANCE_CHAIN_PREFIX, idFromIface } from './names.ts';
import { formatCidr, parseCidr } from '../../../model/ipv4.ts';
import { applyFresh, batchIsEmpty, deleteOf, exactlyOnce, listTable, listTables, mergeBatches, newBatch, sameRules, type Batch, type Tables } from './iptables.ts';
import { raiseSysctl, sysctlExists, writeSysctl } from './sysctl.ts';
import type { NetworkHostConfig } from './types.ts';

const CTX = 'network setup';

/** Pools set up through this module instance (what teardownNetworkHost() without a pool removes). */
const setUpPools = new Set<string>();

/** Neighbour table sizes: two entries per container; the defaults (128/512/1024) overflow near 1,000 containers. */
const NEIGH_GC_THRESH = { gc_thresh1: 8192, gc_thresh2: 16384, gc_thresh3: 32768 } as const;

const ESTABLISHED = '-m conntrack --ctstate RELATED,ESTABLISHED';

/** Static content of warden-forward (rebuilt on every setup). */
const FORWARD_RULES = [
  `-A ${CHAINS.forward} ${ESTABLISHED} -j ACCEPT`,
  // net_in: connections DNATed to a container, from anywhere including other containers.
  `-A ${CHAINS.forward} -o ${IFACE_MATCH} -m conntrack --ctstate DNAT -j ACCEPT`,
  // Other traffic towards containers is the host's FORWARD policy's business.
  `-A ${CHAINS.forward} ! -i ${IFACE_MATCH} -j RETURN`,
  `-A ${CHAINS.forward} -j ${CHAINS.instances}`,
  // A w-* interface with no chain (being set up or torn down) sends nothing.
  `-A ${CHAINS.forward} -j DROP`,
];

/** The first rules of warden-input, in this order. */
const INPUT_HEAD = [
  `-A ${CHAINS.input} ${ESTABLISHED} -j ACCEPT`,
  // DNS a pool's DNAT rule sent to the host's loopback resolver (hostResolver).
  `-A ${CHAINS.input} -d 127.0.0.0/8 -p udp -m udp --dport 53 -m conntrack --ctstate DNAT -j ACCEPT`,
  `-A ${CHAINS.input} -d 127.0.0.0/8 -p tcp -m tcp --dport 53 -m conntrack --ctstate DNAT -j ACCEPT`,
  // route_localnet on the host ends would otherwise open the host's loopback services to containers.
  `-A ${CHAINS.input} -d 127.0.0.0/8 -j DROP`,
];

/**
 * Default deny. TCP gets a reset: this kernel ignores the first ICMP error for
 * a SYN, so a refused connection would hang for a second before failing.
 */
const DEFAULT_TAILS = [
  `-A ${CHAINS.default} -p tcp -j REJECT --reject-with tcp-reset`,
  `-A ${CHAINS.default} -j REJECT --reject-with icmp-port-unreachable`,
];
const LOCALNET_SNAT = `-A ${CHAINS.postrouting} -s 127.0.0.0/8 -o ${IFACE_MATCH} -j MASQUERADE`;

/** Jumps from the built-in chains: table, rule. */
const TOP_JUMPS: ReadonlyArray<readonly ['filter' | 'nat', string]> = [
  ['filter', `-A FORWARD -i ${IFACE_MATCH} -j ${CHAINS.forward}`],
  ['filter', `-A FORWARD -o ${IFACE_MATCH} -j ${CHAINS.forward}`],
  ['filter', `-A INPUT -i ${IFACE_MATCH} -j ${CHAINS.input}`],
  ['nat', `-A PREROUTING -m addrtype --dst-type LOCAL -j ${CHAINS.prerouting}`],
  ['nat', `-A OUTPUT -m addrtype --dst-type LOCAL -j ${CHAINS.prerouting}`],
  ['nat', `-A POSTROUTING -j ${CHAINS.postrouting}`],
];

/** Comment prefix of tagged pool rules: `warden:<depot tag>`. */
const TAG_PREFIX = 'warden:';
const TAGGED = new RegExp(` -m comment --comment "?${TAG_PREFIX}([0-9a-z]+)"? `);

/** Where pool rules live: table, chain. */
const POOL_CHAINS: ReadonlyArray<readonly ['filter' | 'nat', string]> = [
  ['filter', CHAINS.default], ['filter', CHAINS.input], ['nat', CHAINS.postrouting],
];

const FILTER_BASE = [CHAINS.forward, CHAINS.instances, CHAINS.default, CHAINS.input];
const NAT_BASE = [CHAINS.prerouting, CHAINS.postrouting];

interface CheckedConfig {
  pool: string;
  /** ` -m comment --comment warden:<tag>` or ''. */
  mark: string;
  allow: string[];
  deny: string[];
  allowHostAccess: boolean;
  hostResolver?: string;
}

function checkConfig(cfg: NetworkHostConfig): CheckedConfig {
  const pool = parseCidr(cfg.poolNetwork);
  if (!pool || !cfg.poolNetwork.includes('/') || pool.prefix < 1 || pool.prefix > 30) {
    throw new Error(`${CTX}: network.pool_network ${JSON.stringify(cfg.poolNetwork)} is not an IPv4 CIDR with a prefix of /1 to /30`);
  }
  const nets = (key: string, list: string[]): string[] =>
    list.map((n) => {
      const c = parseCidr(n);
      if (!c) throw new Error(`${CTX}: network.${key} entry ${JSON.stringify(n)} is not an IPv4 address or CIDR`);
      return formatCidr(c);
    });
  if (cfg.tag !== undefined && !/^[0-9a-z]{1,32}$/.test(cfg.tag)) throw new Error(`${CTX}: bad depot tag ${JSON.stringify(cfg.tag)}`);
  return {
    pool: formatCidr(pool),
    mark: cfg.tag ? ` -m comment --comment ${TAG_PREFIX}${cfg.tag}` : '',
    allow: nets('allow_networks', cfg.allowNetworks),
    deny: nets('deny_networks', cfg.denyNetworks),
    allowHostAccess: cfg.allowHostAccess,
    hostResolver: checkResolver(cfg.hostResolver),
  };
}

function checkResolver(ip: string | undefined): string | undefined {
  if (ip === undefined) return undefined;
  const c = parseCidr(ip);
  if (!c || ip.includes('/') || c.address >>> 24 !== 127) throw new Error(`${CTX}: host resolver ${JSON.stringify(ip)} is not a 127.x.y.z address`);
  return ip;
}

/** `-d X` as iptables prints it (it leaves out 0.0.0.0/0). */
function dest(cidr: string): string {
  return cidr.endsWith('/0') ? '' : ` -d ${cidr}`;
}

function isPoolRule(rule: string, pool: string): boolean {
  return rule.includes(` -s ${pool} `);
}

/** What setupNetworkHost does besides this pool's own setup. */
export interface SetupOptions {
  /**
   * Whether a tag's pool rules belong to a config nobody uses any more (the caller knows
   * which daemons and depots are alive: see host/daemon-records.ts). Those rules go in
   * the same batch as the setup. Absent: no tag is stale.
   */
  isStale?: (tag: string) => Promise<boolean>;
}

/**
 * Idempotent: kernel settings, base chains, jumps, and this pool's rules (replacing its
 * previous ones), and other configs' stale pool rules removed. Returns the stale tags.
 */
export async function setupNetworkHost(cfg: NetworkHostConfig, opts: SetupOptions = {}): Promise<string[]> {
  checkConfig(cfg);
  await writeSysctl('net/ipv4/ip_forward', 1, CTX);
  // Only the initial network namespace has them (the table is shared): a daemon in a
  // namespace of its own (nested, or a test's private one) leaves them to the host.
  if (await sysctlExists('net/ipv4/neigh/default/gc_thresh1')) {
    for (const [k, v] of Object.entries(NEIGH_GC_THRESH)) await raiseSysctl(`net/ipv4/neigh/default/${k}`, v, CTX);
  }
  return setupHostRules(cfg, opts);
}

/**
 * setupNetworkHost's iptables part: one listing, and one restore only when the listing
 * shows something to change (a restarting daemon usually finds all in place, and
 * every command is a process started while it is down). Returns the stale tags removed.
 */
export async function setupHostRules(cfg: NetworkHostConfig, opts: SetupOptions = {}): Promise<string[]> {
  const c = checkConfig(cfg);
  setUpPools.add(c.pool);
  let removed: string[] = [];
  await applyFresh(async () => {
    const tables = await listTables(CTX);
    const setup = setupInPlace(c, tables.filter, tables.nat) ? newBatch() : setupBatch(c, tables.filter, tables.nat);
    // The setup batch deletes every rule of this pool: stale ones among them are its to delete.
    const stale = opts.isStale ? await staleRules(tables, opts.isStale, batchIsEmpty(setup) ? undefined : c.pool) : { batch: newBatch(), tags: [] };
    removed = stale.tags;
    return mergeBatches([setup, stale.batch]);
  }, CTX);
  return removed;
}

/** This pool's rules in each base chain, as `iptables -S` prints them (but for the comment's quotes: see sameRules), in the order setupBatch leaves them. */
function poolRules(c: CheckedConfig): Record<'default' | 'input' | 'postrouting' | 'prerouting', string[]> {
  return {
    default: [
      ...c.allow.map((n) => `-A ${CHAINS.default} -s ${c.pool}${dest(n)}${c.mark} -j ACCEPT`),
      ...c.deny.map((n) => `-A ${CHAINS.default} -s ${c.pool}${dest(n)}${c.mark} -j DROP`),
    ],
    input: c.allowHostAccess ? [] : [`-A ${CHAINS.input} -s ${c.pool}${c.mark} -j REJECT --reject-with icmp-host-prohibited`],
    postrouting: [`-A ${CHAINS.postrouting} -s ${c.pool} ! -o ${IFACE_MATCH}${c.mark} -j MASQUERADE`],
    // TCP first: earlier builds inserted UDP, then TCP, each at 1; the same order lets an upgrade find them in place.
    prerouting: c.hostResolver
      ? ['tcp', 'udp'].map((p) => `-A ${CHAINS.prerouting} -s ${c.pool} -d ${c.pool} -p ${p} -m ${p} --dport 53 -j DNAT --to-destination ${c.hostResolver}`)
      : [],
  };
}

/** "-A chain spec" → "spec". */
function specOf(rule: string): string {
  return rule.slice(rule.indexOf(' ', 3) + 1);
}

/** The whole setup from what the listing shows (setupInPlace says when none is needed; keep the two in step). */
function setupBatch(c: CheckedConfig, filter: Map<string, string[]>, nat: Map<string, string[]>): Batch {
  const b = newBatch();
  const want = poolRules(c);

  for (const chain of FILTER_BASE) if (!filter.has(chain)) b.filter.push(`-N ${chain}`);
  for (const chain of NAT_BASE) if (!nat.has(chain)) b.nat.push(`-N ${chain}`);

  // warden-forward holds no per-container rules: rebuild it whole (declaring it empties it).
  b.filter.push(`:${CHAINS.forward} - [0:0]`, ...FORWARD_RULES);

  // warden-default: this pool's allow then deny rules on top, REJECT last.
  const defaults = filter.get(CHAINS.default) ?? [];
  for (const r of defaults) if (isPoolRule(r, c.pool) || DEFAULT_TAILS.includes(r)) b.filter.push(deleteOf(r));
  want.default.forEach((r, i) => b.filter.push(`-I ${CHAINS.default} ${i + 1} ${specOf(r)}`));
  b.filter.push(...DEFAULT_TAILS);

  // warden-input: established and the loopback guard first, then this pool's host access rule.
  const input = filter.get(CHAINS.input) ?? [];
  if (!INPUT_HEAD.every((r, i) => input[i] === r)) {
    for (const r of input) if (INPUT_HEAD.includes(r)) b.filter.push(deleteOf(r));
    INPUT_HEAD.forEach((r, i) => b.filter.push(`-I ${CHAINS.input} ${i + 1} ${specOf(r)}`));
  }
  for (const r of input) if (isPoolRule(r, c.pool)) b.filter.push(deleteOf(r));
  b.filter.push(...want.input);

  // warden-postrouting: 127.0.0.1 net_in traffic leaves with the host end's address; the pool is masqueraded outwards.
  const post = nat.get(CHAINS.postrouting) ?? [];
  exactlyOnce(b.nat, post, LOCALNET_SNAT);
  for (const r of post) if (isPoolRule(r, c.pool)) b.nat.push(deleteOf(r));
  b.nat.push(...want.postrouting);

  // warden-prerouting: DNS from this pool's containers to their host end goes to the host's loopback resolver.
  const pre = nat.get(CHAINS.prerouting) ?? [];
  for (const r of pre) if (isPoolRule(r, c.pool)) b.nat.push(deleteOf(r));
  want.prerouting.forEach((r, i) => b.nat.push(`-I ${CHAINS.prerouting} ${i + 1} ${specOf(r)}`));

  for (const [table, rule] of TOP_JUMPS) {
    const chain = rule.split(' ')[1]!;
    exactlyOnce(b[table], (table === 'filter' ? filter : nat).get(chain) ?? [], rule);
  }
  return b;
}

/**
 * Whether the listing already holds what setupBatch would leave, so no restore is
 * needed: the base chains; warden-forward exactly FORWARD_RULES; the default tails
 * last and nowhere else; the input head first; the loopback SNAT and each jump
 * exactly once; this pool's rules exactly as poolRules gives them. Where setupBatch
 * puts them first (warden-default, warden-prerouting) only source-bound rules may
 * come before them, and where it appends them (warden-input, warden-postrouting)
 * only source-bound rules may follow: another pool set up after ours moves its own
 * rules around ours, which changes nothing for our pool's packets. Anything else is
 * not in place, and the restore runs (correct either way, only slower).
 */
function setupInPlace(c: CheckedConfig, filter: Map<string, string[]>, nat: Map<string, string[]>): boolean {
  if (!FILTER_BASE.every((ch) => filter.has(ch)) || !NAT_BASE.every((ch) => nat.has(ch))) return false;
  if (!sameRules(filter.get(CHAINS.forward)!, FORWARD_RULES)) return false;
  const want = poolRules(c);

  const defaults = filter.get(CHAINS.default)!;
  const body = defaults.slice(0, -DEFAULT_TAILS.length);
  if (!sameRules(defaults.slice(-DEFAULT_TAILS.length), DEFAULT_TAILS) || body.some((r) => DEFAULT_TAILS.includes(r))) return false;
  if (!poolRulesInPlace(body, c.pool, want.default, 'first')) return false;

  const input = filter.get(CHAINS.input)!;
  if (!INPUT_HEAD.every((r, i) => input[i] === r)) return false;
  if (!poolRulesInPlace(input.slice(INPUT_HEAD.length), c.pool, want.input, 'last')) return false;

  const post = nat.get(CHAINS.postrouting)!;
  if (post.filter((r) => r === LOCALNET_SNAT).length !== 1) return false;
  if (!poolRulesInPlace(post, c.pool, want.postrouting, 'last')) return false;
  if (!poolRulesInPlace(nat.get(CHAINS.prerouting)!, c.pool, want.prerouting, 'first')) return false;

  return TOP_JUMPS.every(([table, rule]) => {
    const chain = rule.split(' ')[1]!;
    return ((table === 'filter' ? filter : nat).get(chain) ?? []).filter((r) => r === rule).length === 1;
  });
}

/** A rule that matches one source network (another pool's, the loopback SNAT): its order against ours does not matter. */
const SOURCE_BOUND = /^-A \S+ -s \d+\.\d+\.\d+\.\d+\/\d+ /;

/** Whether the chain's rules of pool are exactly want, in order, with only source-bound rules before ('first') or after ('last') them. */
function poolRulesInPlace(rules: string[], pool: string, want: string[], where: 'first' | 'last'): boolean {
  const at = rules.flatMap((r, i) => (isPoolRule(r, pool) ? [i] : []));
  if (!sameRules(at.map((i) => rules[i]!), want)) return false;
  if (at.length === 0) return true;
  const around = where === 'first' ? rules.slice(0, at.at(-1)) : rules.slice(at[0]);
  return around.every((r) => SOURCE_BOUND.test(r));
}


/**
 * Removes this pool's rules, then the base chains and their jumps if nothing else uses
 * them: no per-container chain, no w-* interface, no other pool's rules. Without
 * poolNetwork, the pools set up through this module instance are this caller's.
 */
export interface TeardownOptions {
  /**
   * Also remove the shared base chains and jumps when no pool, container chain or
   * w-* interface uses them. Off by default: several daemons or test suites may
   * share a host, and one removing the base while another sets up races with it.
   * Only a single last process (the test run's global teardown) should ask.
   */
  removeUnusedBase?: boolean;
}

export async function teardownNetworkHost(poolNetwork?: string, opts: TeardownOptions = {}): Promise<void> {
  const ctx = 'network teardown';
  let own: string[];
  if (poolNetwork === undefined) {
    own = [...setUpPools];
  } else {
    const pool = parseCidr(poolNetwork);
    if (!pool) throw new Error(`${ctx}: ${JSON.stringify(poolNetwork)} is not an IPv4 CIDR`);
    own = [formatCidr(pool)];
  }
  await applyFresh(async () => {
    const [filter, nat, ifaces] = await Promise.all([listTable('filter', ctx), listTable('nat', ctx), readdir('/sys/class/net')]);
    return teardownBatch(own, filter, nat, ifaces, !!opts.removeUnusedBase);
  }, ctx);
  for (const p of own) setUpPools.delete(p);
}

function teardownBatch(
  own: string[],
  filter: Map<string, string[]>,
  nat: Map<string, string[]>,
  ifaces: string[],
  removeUnusedBase: boolean,
): Batch {
  const b = newBatch();
  for (const [table, chains, names] of [['filter', filter, TEARDOWN_CHAINS.filter], ['nat', nat, TEARDOWN_CHAINS.nat]] as const) {
    for (const r of rulesIn(chains, names)) if (own.some((p) => isPoolRule(r, p))) b[table].push(deleteOf(r));
  }
  if (baseInUse(filter, nat, ifaces, own) || !removeUnusedBase) return b;
  const all = newBatch();
  removeBase(all, filter, nat);
  return all;
}

/** The base chains a teardown looks through for pool rules (POOL_CHAINS, and prerouting to be sure). */
const TEARDOWN_CHAINS = { filter: [CHAINS.default, CHAINS.input], nat: [CHAINS.postrouting, CHAINS.prerouting] } as const;

function rulesIn(chains: Map<string, string[]>, names: readonly string[]): string[] {
  return names.flatMap((n) => chains.get(n) ?? []);
}

/** Whether anything but the pools `leaving` still hangs off the base: another pool's rules, a container's chain, a w-* interface. */
function baseInUse(filter: Map<string, string[]>, nat: Map<string, string[]>, ifaces: string[], leaving: string[]): boolean {
  const otherPool = (r: string) => / -s \d+\.\d+\.\d+\.\d+\/\d+ /.test(r) && !r.includes(' -s 127.0.0.0/8 ') && !leaving.some((p) => isPoolRule(r, p));
  return (
    [...rulesIn(filter, TEARDOWN_CHAINS.filter), ...rulesIn(nat, TEARDOWN_CHAINS.nat)].some(otherPool) ||
    ifaces.some((n) => idFromIface(n) !== undefined) ||
    [...filter.keys(), ...nat.keys()].some((n) => n.startsWith(INSTANCE_CHAIN_PREFIX))
  );
}

/**
 * The base chains on the host while nothing uses them: what the last teardown with
 * removeUnusedBase should have removed. Leak checks (the bench's) look with it.
 */
export async function unusedBaseChains(): Promise<string[]> {
  const ctx = 'list the base chains';
  const [filter, nat, ifaces] = await Promise.all([listTable('filter', ctx), listTable('nat', ctx), readdir('/sys/class/net')]);
  if (baseInUse(filter, nat, ifaces, [])) return [];
  return [...FILTER_BASE.filter((c) => filter.has(c)).map((c) => `filter ${c}`), ...NAT_BASE.filter((c) => nat.has(c)).map((c) => `nat ${c}`)];
}

function removeBase(b: Batch, filter: Map<string, string[]>, nat: Map<string, string[]>): void {
  const targets = (names: string[]) => (r: string) => names.some((n) => r.endsWith(` -j ${n}`) || r.includes(` -j ${n} `));
  const jumpsTo = { filter: targets(FILTER_BASE), nat: targets(NAT_BASE) };
  for (const [table, chains, base] of [['filter', filter, FILTER_BASE], ['nat', nat, NAT_BASE]] as const) {
    for (const builtin of ['INPUT', 'FORWARD', 'OUTPUT', 'PREROUTING', 'POSTROUTING']) {
      for (const r of chains.get(builtin) ?? []) if (jumpsTo[table](r)) b[table].push(deleteOf(r));
    }
    for (const chain of base) if (chains.has(chain)) b[table].push(`-F ${chain}`);
    for (const chain of base) if (chains.has(chain)) b[table].push(`-X ${chain}`);
  }
}

/**
 * Deletions of the pool rules of configs nobody uses any more, and their tags. Every
 * tagged pool rule names its daemon's depot tag; isStale(tag) decides. Untagged rules
 * (older builds) are left alone: `warden-server --cleanup` removes them for one config.
 * Rules of ownPool (when the setup batch rewrites that pool) are that batch's to delete,
 * as it deletes all of them: a second deletion would fail the restore. Their stale tags
 * still count as removed.
 */
async function staleRules(tables: Tables, isStale: (tag: string) => Promise<boolean>, ownPool?: string): Promise<{ batch: Batch; tags: string[] }> {
  const verdicts = new Map<string, boolean>();
  const batch = newBatch();
  const tags = new Set<string>();
  for (const [table, chain] of POOL_CHAINS) {
    for (const r of tables[table].get(chain) ?? []) {
      const tag = TAGGED.exec(r)?.[1];
      if (!tag) continue;
      if (!verdicts.has(tag)) verdicts.set(tag, await isStale(tag));
      if (!verdicts.get(tag)) continue;
      tags.add(tag);
      if (!(ownPool && isPoolRule(r, ownPool))) batch[table].push(deleteOf(r));
    }
  }
  return { batch, tags: [...tags] };
}

/** Tags named by pool rules now (tests, --cleanup). */
export async function poolRuleTags(): Promise<Map<string, string[]>> {
  const ctx = 'list pool rules';
  const tags = new Map<string, string[]>();
  for (const [table, chain] of POOL_CHAINS) {
    for (const r of (await listTable(table, ctx)).get(chain) ?? []) {
      const tag = TAGGED.exec(r)?.[1];
      if (tag) tags.set(tag, [...(tags.get(tag) ?? []), r]);
    }
  }
  return tags;
}
