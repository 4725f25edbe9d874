// --net user,... options, QEMU-style, and their resolution into the addresses
// the stack uses. Errors are values naming the offending item.

import { ip4ToString, inCidr, parseCidr, parseIp4, prefixMask, type Cidr, type Ip4 } from './addr.js';
import { DEFAULT_TUNING, type TcpTuning } from './tcp.js';
import { OPEN_ACCESS, parseRules, refusal, type EndpointRule, type HostAccess } from './host-access.js';

export interface HostFwdRule {
  proto: 'tcp' | 'udp';
  /** Host address to listen on; 127.0.0.1 when the rule leaves it empty (QEMU would take every address). */
  hostAddr: string;
  /** 0 picks a free port (see UserNet.forwardedPorts()). */
  hostPort: number;
  /** Guest address; the DHCP address when absent. */
  guestAddr?: string;
  guestPort: number;
}

/** guestfwd: guest connections to guestAddr:guestPort are connected to hostAddr:hostPort (TCP). */
export interface GuestFwdRule {
  guestAddr: string;
  guestPort: number;
  hostAddr: string;
  hostPort: number;
}

export interface UserNetOptions {
  /** Guest network, default "10.0.2.0/24". */
  net?: string;
  /** Gateway address, default network + 2; with hostLoopback it stands for the host's 127.0.0.1. */
  host?: string;
  /**
   * host-loopback=on: the gateway address is the host's 127.0.0.1, and the
   * host's own addresses may be dialed. Off (default): only guestfwd reaches them.
   */
  hostLoopback?: boolean;
  guestfwd?: GuestFwdRule[];
  /** Limits set by the daemon's policy (never from --net text); default: none. */
  hostAccess?: HostAccess;
  /** DNS address, default network + 3. */
  dns?: string;
  /** Address handed out by DHCP, default network + 15. */
  dhcpStart?: string;
  hostfwd?: HostFwdRule[];
  /** CIDR blocks the guest may reach; absent means everything. */
  allow?: string[];
  /**
   * Upstream resolvers as "addr[:port]" (IPv4). Absent: the host's resolvers;
   * empty: none, answer A/AAAA from getaddrinfo only.
   */
  dnsServer?: string | string[];
  /** Gateway MAC, default 52:55:0a:00:02:02 (locally administered). */
  mac?: string;
  /** Per-upstream DNS timeout, default 2000 ms. */
  dnsTimeoutMs?: number;
  /** Idle UDP flows are closed after this long, default 60000 ms. */
  udpIdleMs?: number;
  tcp?: Partial<TcpTuning>;
}

export interface ResolvedFwd {
  proto: 'tcp' | 'udp';
  hostAddr: string;
  hostPort: number;
  guestIp: Ip4;
  guestPort: number;
}

export interface ResolvedGuestFwd {
  guestIp: Ip4;
  guestPort: number;
  hostIp: Ip4;
  hostPort: number;
}

export interface UserNetConfig {
  net: Cidr;
  mask: Ip4;
  host: Ip4;
  dns: Ip4;
  guest: Ip4;
  gatewayMac: Uint8Array;
  hostfwd: ResolvedFwd[];
  hostLoopback: boolean;
  guestfwd: ResolvedGuestFwd[];
  /** Host endpoints guestfwd and host-loopback connections may reach; null: any. */
  connectRules: EndpointRule[] | null;
  /** Ports no guest connection reaches on a host-local address (the daemon's API). */
  protectedPorts: ReadonlySet<number>;
  allow: Cidr[] | null;
  /** null: ask the host for its resolvers. */
  dnsUpstreams: { addr: string; port: number }[] | null;
  dnsTimeoutMs: number;
  udpIdleMs: number;
  tcp: TcpTuning;
}

type Result<T> = { ok: true; value: T } | { ok: false; error: string };

const E = (key: string, value: string, why: string) => `--net user: bad ${key} "${value}": ${why}`;

export function parseUserNetOptions(params: string[]): { ok: true; options: UserNetOptions } | { ok: false; error: string } {
  const o: UserNetOptions = {};
  const seen = new Set<string>();
  // Errors found once every item is known (a guest address outside net=) quote the rule as written.
  const fwdTexts = new Map<HostFwdRule, string>();
  let lastKey = '';
  for (const item of params) {
    const eq = item.indexOf('=');
    if (eq < 0) {
      // allow=a/8,b/16 arrives split at the comma: bare items continue the list.
      if (lastKey === 'allow' && item !== '') {
        if (!parseCidr(item)) return { ok: false, error: E('allow', item, 'expected an IPv4 address or CIDR block such as 10.1.2.0/24') };
        o.allow!.push(item);
        continue;
      }
      return { ok: false, error: `--net user: bad item "${item}": expected key=value` };
    }
    const key = item.slice(0, eq);
    const value = item.slice(eq + 1);
    lastKey = key;
    const once = () => {
      if (seen.has(key)) return `--net user: ${key} given twice`;
      seen.add(key);
      return null;
    };
    switch (key) {
      case 'net':
      case 'host':
      case 'dns':
      case 'dhcpstart': {
        const dup = once();
        if (dup) return { ok: false, error: dup };
        if (key === 'net') o.net = value;
        else if (key === 'host') o.host = value;
        else if (key === 'dns') o.dns = value;
        else o.dhcpStart = value;
        break;
      }
      case 'hostfwd': {
        const r = parseHostFwd(value);
        if (!r.ok) return r;
        (o.hostfwd ??= []).push(r.value);
        fwdTexts.set(r.value, value);
        break;
      }
      case 'guestfwd': {
        const r = parseGuestFwd(value);
        if (!r.ok) return r;
        (o.guestfwd ??= []).push(r.value);
        break;
      }
      case 'host-loopback': {
        const dup = once();
        if (dup) return { ok: false, error: dup };
        if (value !== 'on' && value !== 'off') return { ok: false, error: E('host-loopback', value, 'expected on or off') };
        o.hostLoopback = value === 'on';
        break;
      }
      case 'allow':
        if (!parseCidr(value)) return { ok: false, error: E('allow', value, 'expected an IPv4 address or CIDR block such as 10.1.2.0/24') };
        (o.allow ??= []).push(value);
        break;
      case 'dns-server': {
        const list = (o.dnsServer ??= []) as string[];
        if (value === 'none') break;
        if (!parseHostPort(value)) return { ok: false, error: E('dns-server', value, 'expected an IPv4 address with an optional port, such as 127.0.0.1:5353, or none') };
        list.push(value);
        break;
      }
      default:
        return { ok: false, error: `--net user: unknown option "${key}"` };
    }
  }
  const r = resolveUserNetConfig(o, fwdTexts);
  if (!r.ok) return r;
  return { ok: true, options: o };
}

/** [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport */
export function parseHostFwd(value: string): Result<HostFwdRule> {
  const bad = (why: string): Result<HostFwdRule> => ({ ok: false, error: E('hostfwd', value, why) });
  const m = /^([^:]*):([^:]*):([^-]*)-([^:]*):(.*)$/.exec(value);
  if (!m) return bad('expected [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport');
  const [, proto, hostAddr, hostPort, guestAddr, guestPort] = m;
  if (proto !== '' && proto !== 'tcp' && proto !== 'udp') return bad(`protocol "${proto}" is not tcp or udp`);
  if (hostAddr !== '' && parseIp4(hostAddr) === null) return bad(`host address "${hostAddr}" is not an IPv4 address`);
  const hp = parsePort(hostPort, true);
  if (hp === null) return bad(`host port "${hostPort}" is not a number from 0 to 65535`);
  if (guestAddr !== '' && parseIp4(guestAddr) === null) return bad(`guest address "${guestAddr}" is not an IPv4 address`);
  const gp = parsePort(guestPort, false);
  if (gp === null) return bad(`guest port "${guestPort}" is not a number from 1 to 65535`);
  // An empty host address is the loopback, not QEMU's every address: a guest service is not put on the LAN unasked.
  const rule: HostFwdRule = { proto: proto === 'udp' ? 'udp' : 'tcp', hostAddr: hostAddr || '127.0.0.1', hostPort: hp, guestPort: gp };
  if (guestAddr !== '') rule.guestAddr = guestAddr;
  return { ok: true, value: rule };
}

/** [tcp]:guestaddr:guestport-[tcp:]hostaddr:hostport (QEMU writes the target as a "tcp:" chardev). */
export function parseGuestFwd(value: string): Result<GuestFwdRule> {
  const bad = (why: string): Result<GuestFwdRule> => ({ ok: false, error: E('guestfwd', value, why) });
  const m = /^([^:]*):([^:]*):([^-]*)-(?:tcp:)?([^:]*):(.*)$/.exec(value);
  if (!m) return bad('expected tcp:guestaddr:guestport-hostaddr:hostport, such as tcp:10.0.2.100:80-127.0.0.1:8080');
  const [, proto, guestAddr, guestPort, hostAddr, hostPort] = m;
  if (proto !== '' && proto !== 'tcp') return bad(`protocol "${proto}" is not tcp (guestfwd forwards TCP only)`);
  if (parseIp4(guestAddr) === null) return bad(`guest address "${guestAddr}" is not an IPv4 address`);
  const gp = parsePort(guestPort, false);
  if (gp === null) return bad(`guest port "${guestPort}" is not a number from 1 to 65535`);
  if (parseIp4(hostAddr) === null) return bad(`host address "${hostAddr}" is not an IPv4 address`);
  const hp = parsePort(hostPort, false);
  if (hp === null) return bad(`host port "${hostPort}" is not a number from 1 to 65535`);
  return { ok: true, value: { guestAddr, guestPort: gp, hostAddr, hostPort: hp } };
}

function parsePort(s: string, zeroOk: boolean): number | null {
  if (!/^\d{1,5}$/.test(s)) return null;
  const n = Number(s);
  if (n > 65535 || (n === 0 && !zeroOk)) return null;
  return n;
}

function parseHostPort(s: string): { addr: string; port: number } | null {
  const m = /^([^:]+)(?::(\d{1,5}))?$/.exec(s);
  if (!m || parseIp4(m[1]) === null) return null;
  const port = m[2] === undefined ? 53 : parsePort(m[2], false);
  if (port === null) return null;
  return { addr: m[1], port };
}

/** Checks the options and computes every address; the error texts match parseUserNetOptions'. */
export function resolveUserNetConfig(o: UserNetOptions, fwdTexts?: ReadonlyMap<HostFwdRule, string>): Result<UserNetConfig> {
  const fail = (error: string): Result<UserNetConfig> => ({ ok: false, error });
  const netText = o.net ?? '10.0.2.0/24';
  const net = parseCidr(netText, 24);
  if (!net || net.prefix < 8 || net.prefix > 28) return fail(E('net', netText, 'expected an IPv4 network with a prefix from /8 to /28, such as 10.0.2.0/24'));
  const mask = prefixMask(net.prefix);
  const bcast = (net.addr | ~mask) >>> 0;
  const addrIn = (key: string, text: string | undefined, dflt: number): Result<Ip4> => {
    if (text === undefined) {
      const v = (net.addr + dflt) >>> 0;
      if (!inCidr(v, net) || v === bcast) return { ok: false, error: `--net user: network ${netText} is too small for the default ${key} address` };
      return { ok: true, value: v };
    }
    const v = parseIp4(text);
    if (v === null) return { ok: false, error: E(key, text, 'not an IPv4 address') };
    if (!inCidr(v, net) || v === net.addr || v === bcast) return { ok: false, error: E(key, text, `not a host address inside the network ${ip4ToString(net.addr)}/${net.prefix}`) };
    return { ok: true, value: v };
  };
  const host = addrIn('host', o.host, 2);
  if (!host.ok) return host;
  const dns = addrIn('dns', o.dns, 3);
  if (!dns.ok) return dns;
  const guest = addrIn('dhcpstart', o.dhcpStart, 15);
  if (!guest.ok) return guest;
  if (host.value === dns.value || host.value === guest.value || dns.value === guest.value) {
    return fail('--net user: the host, dns and dhcpstart addresses must all differ');
  }
  const access = o.hostAccess ?? OPEN_ACCESS;
  let listenRules: EndpointRule[] | null;
  let connectRules: EndpointRule[] | null;
  try {
    listenRules = access.listen === null ? null : parseRules(access.listen);
    connectRules = access.connect === null ? null : parseRules(access.connect);
  } catch (e) {
    return fail(`--net user: host policy: ${(e as Error).message}`);
  }
  const protectedPorts = new Set(access.protectedPorts);
  const hostfwd: ResolvedFwd[] = [];
  const bound = new Set<string>();
  for (const r of o.hostfwd ?? []) {
    const text = fwdTexts?.get(r) ?? `${r.proto}:${r.hostAddr}:${r.hostPort}-${r.guestAddr ?? ''}:${r.guestPort}`;
    let guestIp = guest.value;
    if (r.guestAddr !== undefined) {
      const g = parseIp4(r.guestAddr);
      if (g === null || !inCidr(g, net)) return fail(E('hostfwd', text, `guest address "${r.guestAddr}" is not inside the network ${ip4ToString(net.addr)}/${net.prefix}`));
      guestIp = g;
    }
    const hostIp = parseIp4(r.hostAddr);
    if (hostIp === null) return fail(E('hostfwd', text, `host address "${r.hostAddr}" is not an IPv4 address`));
    if (protectedPorts.has(r.hostPort)) return fail(E('hostfwd', text, `host port ${r.hostPort} is the daemon's API port`));
    const no = refusal(listenRules, hostIp, r.hostPort);
    if (no) return fail(E('hostfwd', text, `the host's policy does not allow listening on ${no}`));
    const id = `${r.proto} ${r.hostAddr}:${r.hostPort}`;
    if (r.hostPort !== 0 && bound.has(id)) return fail(`--net user: hostfwd ${id} given twice`);
    bound.add(id);
    hostfwd.push({ proto: r.proto, hostAddr: r.hostAddr, hostPort: r.hostPort, guestIp, guestPort: r.guestPort });
  }
  const guestfwd: ResolvedGuestFwd[] = [];
  for (const g of o.guestfwd ?? []) {
    const text = `tcp:${g.guestAddr}:${g.guestPort}-${g.hostAddr}:${g.hostPort}`;
    const gip = parseIp4(g.guestAddr);
    if (gip === null || !inCidr(gip, net) || gip === net.addr || gip === bcast) {
      return fail(E('guestfwd', text, `guest address "${g.guestAddr}" is not a host address inside the network ${ip4ToString(net.addr)}/${net.prefix}`));
    }
    if (gip === dns.value || gip === guest.value) return fail(E('guestfwd', text, `guest address "${g.guestAddr}" is the DNS or the guest's own address`));
    if (guestfwd.some((x) => x.guestIp === gip && x.guestPort === g.guestPort)) return fail(`--net user: guestfwd ${g.guestAddr}:${g.guestPort} given twice`);
    const hip = parseIp4(g.hostAddr);
    if (hip === null) return fail(E('guestfwd', text, `host address "${g.hostAddr}" is not an IPv4 address`));
    guestfwd.push({ guestIp: gip, guestPort: g.guestPort, hostIp: hip, hostPort: g.hostPort });
  }
  let allow: Cidr[] | null = null;
  if (o.allow !== undefined) {
    allow = [];
    for (const a of o.allow) {
      const c = parseCidr(a);
      if (!c) return fail(E('allow', a, 'expected an IPv4 address or CIDR block such as 10.1.2.0/24'));
      allow.push(c);
    }
  }
  let dnsUpstreams: UserNetConfig['dnsUpstreams'] = null;
  if (o.dnsServer !== undefined) {
    dnsUpstreams = [];
    for (const s of typeof o.dnsServer === 'string' ? [o.dnsServer] : o.dnsServer) {
      if (s === 'none') continue;
      const hp = parseHostPort(s);
      if (!hp) return fail(E('dns-server', s, 'expected an IPv4 address with an optional port, such as 127.0.0.1:5353, or none'));
      dnsUpstreams.push(hp);
    }
  }
  let gatewayMac = new Uint8Array([0x52, 0x55, (host.value >>> 24) & 0xff, (host.value >>> 16) & 0xff, (host.value >>> 8) & 0xff, host.value & 0xff]);
  if (o.mac !== undefined) {
    const m = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(o.mac) ? Uint8Array.from(o.mac.split(':'), (x) => parseInt(x, 16)) : null;
    if (!m || (m[0] & 1) !== 0) return fail(E('mac', o.mac, 'expected a unicast MAC address such as 52:55:0a:00:02:02'));
    gatewayMac = m;
  }
  return {
    ok: true,
    value: {
      net,
      mask,
      host: host.value,
      dns: dns.value,
      guest: guest.value,
      gatewayMac,
      hostfwd,
      hostLoopback: o.hostLoopback === true,
      guestfwd,
      connectRules,
      protectedPorts,
      allow,
      dnsUpstreams,
      dnsTimeoutMs: o.dnsTimeoutMs ?? 2000,
      udpIdleMs: o.udpIdleMs ?? 60000,
      tcp: { ...DEFAULT_TUNING, ...o.tcp },
    },
  };
}
