// The daemon's network policy: which host endpoints its VMs may connect to
// (guestfwd targets, host-loopback=on) and which host addresses and ports
// their hostfwd rules may listen on. The daemon's own TCP API port is never
// reachable from a guest and never bound by a VM, whatever the rules say.
// Rule syntax and the consent rules for 0.0.0.0 and ports below 1024 are in
// net/user/host-access.ts.

import { networkInterfaces } from 'node:os';
import { inCidr, parseIp4, type Ip4 } from '../net/user/addr.js';
import { parseEndpointRule, parseRules, refusal, type EndpointRule, type HostAccess } from '../net/user/host-access.js';
import type { UserNetOptions } from '../net/user/options.js';

export interface NetPolicy {
  /** guestfwd targets and host-loopback destinations (serve --allow-guestfwd); default none. */
  connect: string[];
  /** hostfwd listen addresses and ports (serve --allow-hostfwd); default 127.0.0.1:*. */
  listen: string[];
  /** The daemon's TCP API ports, added once it listens. */
  protectedPorts: number[];
}

const LOOPBACK = 0x7f000001;

export const DEFAULT_LISTEN_RULES = ['127.0.0.1:*'];

export function defaultNetPolicy(): NetPolicy {
  return { connect: [], listen: [...DEFAULT_LISTEN_RULES], protectedPorts: [] };
}

/** Rules from repeated flags; "none" alone means no rule at all. Throws with the flag's name. */
export function parsePolicyRules(flag: string, texts: readonly string[]): string[] {
  if (texts.length === 1 && texts[0] === 'none') return [];
  for (const t of texts) {
    const r = parseEndpointRule(t);
    if (!r.ok) throw new Error(`${flag}: ${r.error}`);
  }
  return [...texts];
}

/** Throws on a rule that does not parse (a policy handed to startDaemon by code rather than by serve's flags). */
export function checkNetPolicy(p: NetPolicy): void {
  for (const t of [...p.listen, ...p.connect]) {
    const r = parseEndpointRule(t);
    if (!r.ok) throw new Error(`network policy: ${r.error}`);
  }
}

/** What a user NIC's backend enforces at run time (connections, binds). */
export function hostAccessOf(p: NetPolicy): HostAccess {
  return { connect: [...p.connect], listen: [...p.listen], protectedPorts: [...p.protectedPorts] };
}

function isHostLocal(ip: Ip4): boolean {
  const top = ip >>> 24;
  if (top === 127 || top === 0) return true;
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (parseIp4(a.address) === ip) return true;
  }
  return false;
}

/**
 * The first way a user NIC's options break the policy, as "field: why", or
 * null. `field` is the NIC's API path, e.g. "nics[0]".
 */
export function policyViolation(p: NetPolicy, o: UserNetOptions, field: string): string | null {
  const connect: EndpointRule[] = parseRules(p.connect);
  const listen: EndpointRule[] = parseRules(p.listen);
  const hint = (flag: string) => ` (the daemon's network policy, tsvisor serve ${flag})`;
  for (const [j, h] of (o.hostfwd ?? []).entries()) {
    const ip = parseIp4(h.hostAddr) ?? 0;
    if (p.protectedPorts.includes(h.hostPort)) return `${field}.hostfwd[${j}]: host port ${h.hostPort} is the daemon's API port`;
    const no = refusal(listen, ip, h.hostPort);
    if (no) return `${field}.hostfwd[${j}]: listening on ${no}${hint('--allow-hostfwd')}`;
  }
  for (const [j, g] of (o.guestfwd ?? []).entries()) {
    const ip = parseIp4(g.hostAddr) ?? 0;
    if (p.protectedPorts.includes(g.hostPort) && isHostLocal(ip)) return `${field}.guestfwd[${j}]: ${g.hostAddr}:${g.hostPort} is the daemon's API port`;
    const no = refusal(connect, ip, g.hostPort);
    if (no) return `${field}.guestfwd[${j}]: connecting to ${no}${hint('--allow-guestfwd')}`;
  }
  if (o.hostLoopback && !connect.some((r) => inCidr(LOOPBACK, r.net))) {
    return `${field}.hostLoopback: the host's loopback is not open to VMs${hint('--allow-guestfwd 127.0.0.1:PORTS')}`;
  }
  return null;
}
