// The DNS address (10.0.2.3 by default) relays each guest query to an upstream
// resolver and the answer back, trying the upstreams in turn. When none is
// configured or none answers in time, A and AAAA questions are answered from
// the host's getaddrinfo (so the host's hosts file counts), anything else gets an empty answer.

import type { Ip4 } from './addr.js';
import { buildResponse, errorResponse, truncatedResponse, ipv4Bytes, ipv6Bytes, parseQuery, RCODE_FORMERR, RCODE_NXDOMAIN, RCODE_SERVFAIL, TYPE_A, TYPE_AAAA } from './dns.js';
import type { HostApi, HostUdpSocket } from './host-api.js';

export interface Upstream {
  addr: string;
  port: number;
}

interface Pending {
  guestIp: Ip4;
  guestPort: number;
  query: Uint8Array;
  next: number;
  sock: HostUdpSocket | null;
  timer: unknown;
  done: boolean;
}

/** Queries in flight at once; more are dropped (the guest retries). */
const MAX_PENDING = 256;

export class DnsProxy {
  private readonly pending = new Set<Pending>();
  private closed = false;

  constructor(
    private readonly api: HostApi,
    private readonly upstreams: Upstream[],
    private readonly timeoutMs: number,
    private readonly reply: (guestIp: Ip4, guestPort: number, data: Uint8Array) => void,
    private readonly maxAnswer: number,
  ) {}

  /** The first upstream, where the guest's DNS over TCP goes; null without one. */
  tcpUpstream(): Upstream | null {
    return this.upstreams[0] ?? null;
  }

  /** Returns false when the query is refused (malformed or too many in flight). */
  query(guestIp: Ip4, guestPort: number, data: Uint8Array): boolean {
    if (this.closed || data.length < 12 || (data[2] & 0x80) !== 0 || this.pending.size >= MAX_PENDING) return false;
    const p: Pending = { guestIp, guestPort, query: data.slice(), next: 0, sock: null, timer: null, done: false };
    this.pending.add(p);
    this.tryNext(p);
    return true;
  }

  close(): void {
    this.closed = true;
    for (const p of this.pending) this.finish(p, null);
  }

  private tryNext(p: Pending): void {
    this.stopAttempt(p);
    if (p.done) return;
    if (p.next >= this.upstreams.length) {
      void this.fallback(p);
      return;
    }
    const up = this.upstreams[p.next++];
    const id0 = p.query[0];
    const id1 = p.query[1];
    const sock = this.api.udpOpen({
      message: (data, addr, port) => {
        if (p.sock !== sock || addr !== up.addr || port !== up.port) return;
        if (data.length < 12 || data[0] !== id0 || data[1] !== id1 || (data[2] & 0x80) === 0) return;
        this.finish(p, data);
      },
    });
    p.sock = sock;
    p.timer = this.api.setTimer(() => {
      p.timer = null;
      this.tryNext(p);
    }, this.timeoutMs);
    sock.send(p.query, up.port, up.addr);
  }

  private async fallback(p: Pending): Promise<void> {
    const qn = parseQuery(p.query);
    if (!qn) {
      this.finish(p, errorResponse(p.query, RCODE_FORMERR));
      return;
    }
    if (qn.type !== TYPE_A && qn.type !== TYPE_AAAA) {
      this.finish(p, buildResponse(p.query, qn, 0, []));
      return;
    }
    const res = await this.api.lookup(qn.name, qn.type === TYPE_A ? 4 : 6);
    if (p.done) return;
    if (!res.ok && res.notFound && qn.type === TYPE_AAAA) {
      // getaddrinfo says "not found" for a name with only IPv4 addresses: that
      // is an empty answer, not NXDOMAIN, or the guest would drop its A record too.
      const v4 = await this.api.lookup(qn.name, 4);
      if (p.done) return;
      if (v4.ok) {
        this.finish(p, buildResponse(p.query, qn, 0, []));
        return;
      }
    }
    if (!res.ok) {
      this.finish(p, buildResponse(p.query, qn, res.notFound ? RCODE_NXDOMAIN : RCODE_SERVFAIL, []));
      return;
    }
    const rdatas: Uint8Array[] = [];
    for (const a of res.addresses) {
      const b = qn.type === TYPE_A ? ipv4Bytes(a) : ipv6Bytes(a);
      if (b) rdatas.push(b);
    }
    this.finish(p, buildResponse(p.query, qn, 0, rdatas));
  }

  private stopAttempt(p: Pending): void {
    if (p.timer !== null) this.api.clearTimer(p.timer);
    p.timer = null;
    p.sock?.close();
    p.sock = null;
  }

  private finish(p: Pending, answer: Uint8Array | null): void {
    if (p.done) return;
    p.done = true;
    this.stopAttempt(p);
    this.pending.delete(p);
    if (answer && answer.length > this.maxAnswer) answer = truncatedResponse(answer);
    if (answer && !this.closed) this.reply(p.guestIp, p.guestPort, answer);
  }
}
