// The user-mode network backend: a small TCP/IP stack that plays gateway, DHCP
// and DNS server for the guest, and relays its TCP and UDP through ordinary host
// sockets (QEMU's "user" networking, with its default addresses).
//
// Not supported, on purpose (the guest is a single local Linux): IPv6 (its frames
// are dropped and counted), IP fragments and IP options (dropped), ICMP other
// than echo to tsvisor's own addresses, ICMP errors toward the guest (a refused
// UDP port is silence, a refused TCP port a RST), TCP window scaling, SACK and
// timestamps (never offered), more than one DHCP lease.
//
// Frames toward the guest may be delivered from inside fromGuest() (ARP, ICMP,
// DHCP, RSTs) as well as from host socket events and timers.

import type { NetBackend, NetCounters } from '../backend.js';
import { BROADCAST_MAC, inCidr, ip4ToString, parseIp4, type Ip4 } from './addr.js';
import { AllowList } from './allow-list.js';
import { ARP_REQUEST, parseArp } from './arp.js';
import { DHCP_CLIENT_PORT, DHCP_SERVER_PORT, handleDhcp, type DhcpConfig } from './dhcp.js';
import { DnsProxy, type Upstream } from './dns-proxy.js';
import { ETH_HLEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, MAX_FRAME } from './ethernet.js';
import type { HostApi } from './host-api.js';
import { HostFwd } from './hostfwd.js';
import { anyRuleMatches } from './host-access.js';
import { HostLocalAddresses } from './host-local.js';
import { NodeHostApi } from './host-sockets.js';
import { checkIcmp, ICMP_ECHO_REQUEST, makeEchoReply } from './icmp.js';
import { parseIpv4, PROTO_ICMP, PROTO_TCP, PROTO_UDP } from './ipv4.js';
import { resolveUserNetConfig, type UserNetConfig, type UserNetOptions } from './options.js';
import { L4_OFF, MAX_UDP_PAYLOAD, Output } from './output.js';
import { TcpNat, type Route } from './tcp-nat.js';
import { parseTcp } from './tcp-segment.js';
import { parseUdp } from './udp.js';
import { UdpNat } from './udp-nat.js';

const LOOPBACK = 0x7f000001;
const DNS_PORT = 53;
const LEASE_SECS = 86400;

export class UserNet implements NetBackend {
  readonly description: string;
  readonly config: UserNetConfig;
  private readonly api: NodeHostApi;
  private readonly out: Output;
  private readonly allow: AllowList;
  private readonly local: HostLocalAddresses;
  private readonly tcp: TcpNat;
  private readonly udp: UdpNat;
  private readonly dnsProxy: DnsProxy;
  private readonly fwd: HostFwd;
  private readonly dhcp: DhcpConfig;
  private readonly reasons = new Map<string, number>();
  private rxFrames = 0;
  private rxBytes = 0;
  private dropped = 0;
  private closed = false;

  /** Throws on options that parseUserNetOptions would have refused. */
  constructor(options: UserNetOptions = {}) {
    const r = resolveUserNetConfig(options);
    if (!r.ok) throw new Error(r.error);
    const c = (this.config = r.value);
    this.description = `user ${ip4ToString(c.guest)}/${c.net.prefix}`;
    this.api = new NodeHostApi();
    const api: HostApi = this.api;
    this.out = new Output(c.gatewayMac, c.host);
    this.allow = new AllowList(c.allow);
    this.local = new HostLocalAddresses(api);
    this.tcp = new TcpNat(this.out, api, c.tcp, (dst, port) => this.route(dst, port), (why) => this.drop(why));
    this.udp = new UdpNat(api, this.out, c.udpIdleMs, (why) => this.drop(why));
    this.dnsProxy = new DnsProxy(
      api,
      c.dnsUpstreams ?? hostUpstreams(api.dnsServers()),
      c.dnsTimeoutMs,
      (guestIp, guestPort, data) => this.out.sendUdp(c.dns, guestIp, DNS_PORT, guestPort, data),
      MAX_UDP_PAYLOAD,
    );
    this.fwd = new HostFwd(api, c.hostfwd, c.host, this.tcp, this.out, c.udpIdleMs);
    this.dhcp = { server: c.host, clientIp: c.guest, mask: c.mask, router: c.host, dns: c.dns, leaseSecs: LEASE_SECS };
  }

  /**
   * Opens the port-forward listeners. Rejects with an Error whose message names
   * the rule and the reason (e.g. address already in use); nothing stays open then.
   */
  listen(): Promise<void> {
    return this.fwd.listen();
  }

  /** Host ports the forwards listen on (useful with host port 0). */
  forwardedPorts(): { proto: 'tcp' | 'udp'; hostAddr: string; port: number; guestPort: number }[] {
    return this.fwd.ports();
  }

  start(toGuest: (frame: Uint8Array) => void): void {
    if (!this.closed) this.out.toGuest = toGuest;
  }

  fromGuest(frame: Uint8Array): void {
    this.rxFrames++;
    this.rxBytes += frame.length;
    if (this.closed) return;
    try {
      this.handleFrame(frame);
    } catch {
      // A bug must not take the VMM down with the guest's frame.
      this.drop('internal-error');
    }
  }

  counters(): NetCounters {
    return {
      rxFromGuestFrames: this.rxFrames,
      rxFromGuestBytes: this.rxBytes,
      txToGuestFrames: this.out.frames,
      txToGuestBytes: this.out.bytes,
      dropped: this.dropped,
    };
  }

  /** Dropped guest frames by reason (e.g. "ip-checksum", "tcp-denied"). */
  dropReasons(): Record<string, number> {
    return Object.fromEntries(this.reasons);
  }

  /** Live guest TCP connections and UDP flows (for tests and stats). */
  connections(): { tcp: number; udp: number } {
    return { tcp: this.tcp.conns.size, udp: this.udp.size };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.out.toGuest = null;
    this.tcp.close();
    this.udp.close();
    this.dnsProxy.close();
    this.fwd.close();
    this.api.closeAll();
  }

  private drop(reason: string): void {
    this.dropped++;
    this.reasons.set(reason, (this.reasons.get(reason) ?? 0) + 1);
  }

  private handleFrame(b: Uint8Array): void {
    const len = b.length;
    if (len > MAX_FRAME) return this.drop('oversized');
    if (len < ETH_HLEN) return this.drop('eth-truncated');
    if ((b[6] & 1) !== 0) return this.drop('eth-bad-source');
    const mac = this.out.ourMac;
    const toUs = b[0] === mac[0] && b[1] === mac[1] && b[2] === mac[2] && b[3] === mac[3] && b[4] === mac[4] && b[5] === mac[5];
    const toAll = b[0] === 0xff && b[1] === 0xff && b[2] === 0xff && b[3] === 0xff && b[4] === 0xff && b[5] === 0xff;
    if (!toUs && !toAll) return this.drop((b[0] & 1) === 1 ? 'eth-multicast' : 'eth-not-for-us');
    const type = (b[12] << 8) | b[13];
    if (type === ETHERTYPE_ARP) return this.handleArp(b);
    if (type === ETHERTYPE_IPV4) return this.handleIp(b, toAll);
    this.drop('ethertype');
  }

  private learnMac(b: Uint8Array): void {
    const g = this.out.guestMac;
    if (g && g[0] === b[6] && g[1] === b[7] && g[2] === b[8] && g[3] === b[9] && g[4] === b[10] && g[5] === b[11]) return;
    this.out.guestMac = b.slice(6, 12);
  }

  private handleArp(b: Uint8Array): void {
    const a = parseArp(b, b.length);
    if (typeof a === 'string') return this.drop(a);
    this.learnMac(b);
    const c = this.config;
    const ours = a.targetIp === c.host || a.targetIp === c.dns || c.guestfwd.some((g) => g.guestIp === a.targetIp);
    if (a.op === ARP_REQUEST && ours && a.senderIp !== a.targetIp) {
      this.out.sendArpReply(b.slice(6, 12), c.gatewayMac, a.targetIp, a.senderIp);
    }
    // Replies and gratuitous ARP only teach us the guest's MAC (done above).
  }

  private handleIp(b: Uint8Array, broadcastMac: boolean): void {
    const ip = parseIpv4(b, ETH_HLEN, b.length);
    if (typeof ip === 'string') return this.drop(ip);
    const c = this.config;
    if (ip.src >= 0xe0000000 || ip.src === LOOPBACK || ip.src >>> 24 === 127) return this.drop('ip-bad-source');
    this.learnMac(b);
    const dstBroadcast = ip.dst === 0xffffffff || ip.dst === ((c.net.addr | ~c.mask) >>> 0);
    if (broadcastMac && !dstBroadcast) return this.drop('ip-broadcast-mismatch');
    switch (ip.proto) {
      case PROTO_UDP:
        return this.handleUdp(b, ip.src, ip.dst, ip.off, ip.len, dstBroadcast);
      case PROTO_TCP: {
        if (dstBroadcast || ip.dst >= 0xe0000000 || ip.src === 0) return this.drop('tcp-bad-address');
        const seg = parseTcp(b, ip.off, ip.len, ip.src, ip.dst);
        if (typeof seg === 'string') return this.drop(seg);
        return this.tcp.segment(ip.src, ip.dst, seg, b);
      }
      case PROTO_ICMP: {
        const bad = checkIcmp(b, ip.off, ip.len);
        if (bad) return this.drop(bad);
        // Echo is answered for tsvisor's own addresses only: relaying pings to
        // other hosts would need raw or ping sockets the host may not allow.
        if (b[ip.off] !== ICMP_ECHO_REQUEST || b[ip.off + 1] !== 0 || (ip.dst !== c.host && ip.dst !== c.dns) || ip.src === 0) {
          return this.drop('icmp-unsupported');
        }
        this.out.buf.set(b.subarray(ip.off, ip.off + ip.len), L4_OFF);
        makeEchoReply(this.out.buf, L4_OFF, ip.len);
        this.out.sendIp(ip.dst, ip.src, PROTO_ICMP, ip.len, false);
        return;
      }
      default:
        this.drop('ip-protocol');
    }
  }

  private handleUdp(b: Uint8Array, src: Ip4, dst: Ip4, off: number, len: number, dstBroadcast: boolean): void {
    const u = parseUdp(b, off, len, src, dst);
    if (typeof u === 'string') return this.drop(u);
    const c = this.config;
    const payload = b.subarray(u.off, u.off + u.len);
    if (u.dstPort === DHCP_SERVER_PORT && (dstBroadcast || dst === c.host)) {
      const r = handleDhcp(b, u.off, u.len, this.dhcp);
      if (typeof r === 'string') return this.drop(r);
      if (r) {
        this.out.sendUdp(c.host, r.dst, DHCP_SERVER_PORT, DHCP_CLIENT_PORT, r.payload, r.broadcast ? BROADCAST_MAC : r.chaddr);
      }
      return;
    }
    if (dstBroadcast || src === 0) return this.drop('udp-broadcast');
    if (dst === c.dns) {
      if (u.dstPort !== DNS_PORT) return this.drop('udp-unroutable');
      if (!this.dnsProxy.query(src, u.srcPort, payload)) this.drop('dns-refused');
      return;
    }
    if (dst === c.host && this.fwd.fromGuestUdp(src, u.srcPort, u.dstPort, payload)) return;
    const r = this.route(dst, u.dstPort, false);
    if ('refused' in r) return this.drop(`udp-${r.refused === 'host' ? 'host-denied' : r.refused}`);
    this.udp.send(src, u.srcPort, dst, u.dstPort, r.addr, payload);
  }

  /**
   * Host destination for a guest-visible address. TCP to the DNS address's
   * port 53 goes to the first upstream resolver (DNS over TCP, after a
   * truncated UDP answer), and a guestfwd address to its target: both are set
   * by the host, so the allow-list does not apply to them. Anything that lands
   * on the host itself (the gateway as 127.0.0.1, the host's own addresses)
   * needs host-loopback=on, and every host endpoint is checked against the
   * host's policy.
   */
  private route(dst: Ip4, port: number, tcp = true): Route {
    const c = this.config;
    if (tcp && dst === c.dns && port === DNS_PORT) {
      const up = this.dnsProxy.tcpUpstream();
      if (!up) return { refused: 'unroutable' };
      const upIp = parseIp4(up.addr);
      if (upIp !== null && this.isProtected(upIp, up.port)) return { refused: 'host' };
      return { addr: up.addr, port: up.port };
    }
    if (tcp) {
      const g = c.guestfwd.find((x) => x.guestIp === dst && x.guestPort === port);
      if (g) return this.hostAllows(g.hostIp, g.hostPort, true) ? { addr: ip4ToString(g.hostIp), port: g.hostPort } : { refused: 'host' };
    }
    let hostIp = dst;
    if (dst === c.host) {
      if (!c.hostLoopback) return { refused: 'host' };
      hostIp = LOOPBACK;
    } else if (inCidr(dst, c.net) || dst >= 0xe0000000 || dst >>> 24 === 0 || dst >>> 24 === 127) return { refused: 'unroutable' };
    if (!this.allow.allows(hostIp)) return { refused: 'denied' };
    if (this.local.has(hostIp) && (!c.hostLoopback || !this.hostAllows(hostIp, port, tcp))) return { refused: 'host' };
    return { addr: ip4ToString(hostIp) };
  }

  /** May a guest connection reach this host endpoint (a guestfwd target, or the host itself)? */
  private hostAllows(ip: Ip4, port: number, tcp: boolean): boolean {
    if (tcp && this.isProtected(ip, port)) return false;
    return anyRuleMatches(this.config.connectRules, ip, port);
  }

  /** The daemon's API ports, on any address that is the host. */
  private isProtected(ip: Ip4, port: number): boolean {
    return this.config.protectedPorts.has(port) && this.local.has(ip);
  }
}

/** The host's IPv4 resolvers; IPv6 ones are skipped (the getaddrinfo fallback still covers them). */
function hostUpstreams(servers: string[]): Upstream[] {
  const out: Upstream[] = [];
  for (const s of servers) {
    const m = /^(\d+\.\d+\.\d+\.\d+)(?::(\d+))?$/.exec(s);
    if (m) out.push({ addr: m[1], port: m[2] ? Number(m[2]) : 53 });
  }
  return out;
}
