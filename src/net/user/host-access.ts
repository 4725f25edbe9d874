// What a VM may do with the host itself: which host endpoints its
// connections may reach (guestfwd targets, host-loopback) and which host
// addresses and ports its hostfwd rules may bind. `tsvisor run` allows both
// without limit; the daemon sets them from its policy (serve --allow-*), and
// always protects its own API ports.
//
// A rule is "ADDR[/PREFIX]:PORTS", PORTS being N, N-M or "*". Two things need
// consent written out, never implied: "*" means the unprivileged ports
// 1024-65535 only, so a port below 1024 matches only a rule whose range names
// it; and the all-addresses address 0.0.0.0 matches only a rule that is
// exactly 0.0.0.0 (not 0.0.0.0/0, which means "any single address").

import { inCidr, ip4ToString, parseCidr, type Cidr, type Ip4 } from './addr.js';

export interface EndpointRule {
  text: string;
  net: Cidr;
  first: number;
  last: number;
}

/**
 * Plain data, so it crosses to a VM's own process with its NIC specs.
 * Rules are kept as text and parsed where they are used.
 */
export interface HostAccess {
  /** Host endpoints that guestfwd targets and host-loopback connections may reach; null: any. */
  connect: string[] | null;
  /** Host addresses and ports hostfwd may bind; null: any. */
  listen: string[] | null;
  /** Ports (the daemon's TCP API) no guest connection reaches on a host-local address and no hostfwd binds. */
  protectedPorts: number[];
}

export const OPEN_ACCESS: HostAccess = { connect: null, listen: null, protectedPorts: [] };

export const UNPRIVILEGED_FIRST = 1024;

export function parseEndpointRule(text: string): { ok: true; rule: EndpointRule } | { ok: false; error: string } {
  const bad = (why: string) => ({ ok: false as const, error: `bad rule "${text}": ${why}` });
  const colon = text.lastIndexOf(':');
  if (colon < 0) return bad('expected ADDR[/PREFIX]:PORTS, such as 127.0.0.1:8000-8999 or 127.0.0.1:*');
  const net = parseCidr(text.slice(0, colon));
  if (!net) return bad(`"${text.slice(0, colon)}" is not an IPv4 address or CIDR block`);
  const ports = text.slice(colon + 1);
  if (ports === '*') return { ok: true, rule: { text, net, first: UNPRIVILEGED_FIRST, last: 65535 } };
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(ports);
  const first = m ? Number(m[1]) : NaN;
  const last = m ? Number(m[2] ?? m[1]) : NaN;
  if (!m || first < 1 || last > 65535 || first > last) return bad(`"${ports}" is not a port (1-65535), a range N-M or *`);
  return { ok: true, rule: { text, net, first, last } };
}

/** Parses rule texts; throws on a bad one (they were checked where they came from). */
export function parseRules(texts: readonly string[]): EndpointRule[] {
  return texts.map((t) => {
    const r = parseEndpointRule(t);
    if (!r.ok) throw new Error(r.error);
    return r.rule;
  });
}

/**
 * Does the rule cover this host address and port? Port 0 (a hostfwd that lets
 * the kernel pick) needs every unprivileged port, since any of them may come.
 */
export function ruleMatches(r: EndpointRule, ip: Ip4, port: number): boolean {
  if (ip === 0 ? r.net.addr !== 0 || r.net.prefix !== 32 : !inCidr(ip, r.net)) return false;
  if (port === 0) return r.first <= UNPRIVILEGED_FIRST && r.last === 65535;
  return port >= r.first && port <= r.last;
}

export function anyRuleMatches(rules: readonly EndpointRule[] | null, ip: Ip4, port: number): boolean {
  if (rules === null) return true;
  return rules.some((r) => ruleMatches(r, ip, port));
}

/** Why the rules refuse ip:port, in words for an error message, or null when they allow it. */
export function refusal(rules: readonly EndpointRule[] | null, ip: Ip4, port: number): string | null {
  if (anyRuleMatches(rules, ip, port)) return null;
  const where = `${ip4ToString(ip)}:${port === 0 ? '(any free port)' : port}`;
  if (ip === 0) return `${where}: 0.0.0.0 (every host address) needs a rule naming 0.0.0.0 itself`;
  if (port !== 0 && port < UNPRIVILEGED_FIRST) return `${where}: privileged port ${port} needs a rule whose port range names it`;
  return `${where} is not covered by any rule`;
}
