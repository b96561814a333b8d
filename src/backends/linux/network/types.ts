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
   * The host's loopback DNS resolver (systemd-resolved's 127.0.0.53, a local dnsmasq),
   * when containers are pointed at their host end for DNS: port 53 there goes to it.
   */
  hostResolver?: string;
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

/** The container record's NetOut rule (one type for the daemon and this module). */
export type { NetOutRule } from '../../../model/records.ts';

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
