// The network module's boundary types (shared with the Linux backend).

export interface NetworkHostConfig {
  /** CIDR the containers' /30 networks come from, e.g. 10.254.0.0/24. */
  poolNetwork: string;
  /** Destinations every container may reach without a net_out rule (CIDRs). */
  allowNetworks: string[];
  /** Destinations dropped for every container unless a net_out rule allows them (CIDRs). */
  denyNetworks: string[];
  /** false: containers cannot open connections to the host's own addresses. */
  allowHostAccess: boolean;
  /**
   * The owning daemon's depot tag: its pool rules carry `-m comment --comment warden:<tag>`,
   * so a later start can tell whose they are and remove those of a config nobody uses.
   */
  tag?: string;
}

/** A container's /30: host end .1, container end .2. */
export interface ContainerNetSpec {
  id: string;
  hostIp: string;
  containerIp: string;
  mtu: number;
}

/** protocol: 0 TCP (default), 1 UDP, 2 ICMP, 3 ALL (NetOutRequest.Protocol). */
export interface NetOutRule {
  network?: string;
  port?: number;
  port_range?: string;
  protocol?: 0 | 1 | 2 | 3;
  icmp_type?: number;
  icmp_code?: number;
  log?: boolean;
}

export interface NetInRule {
  host_port: number;
  container_port: number;
}

export interface BandwidthLimit {
  rate: number;
  burst: number;
}

/** Bytes/s and bytes; in = towards the container, out = from the container. */
export interface BandwidthStat {
  in_rate: number;
  in_burst: number;
  out_rate: number;
  out_burst: number;
}
