// Test-side packet builders and parsers, and a scripted guest that speaks to a
// NetBackend with raw Ethernet frames: ARP, DHCP, UDP and a small TCP peer with
// go-back-N retransmission. Checksums here are computed the plain way, on
// purpose independent of the stack's own code.

import type { NetBackend } from '../../src/net/backend.js';

export const GUEST_MAC = Uint8Array.from([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
export const BCAST_MAC = Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
export const GW_MAC = Uint8Array.from([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]);
export const GUEST_IP = ip('10.0.2.15');
export const GW_IP = ip('10.0.2.2');
export const DNS_IP = ip('10.0.2.3');

export const TCP_FIN = 1, TCP_SYN = 2, TCP_RST = 4, TCP_PSH = 8, TCP_ACK = 16;

export function ip(s: string): number {
  return s.split('.').reduce((a, x) => a * 256 + Number(x), 0);
}

export function ipStr(v: number): string {
  return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
}

function u16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}

function u32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 255;
  b[o + 1] = v & 255;
}

function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 255;
  b[o + 1] = (v >>> 16) & 255;
  b[o + 2] = (v >>> 8) & 255;
  b[o + 3] = v & 255;
}

/** Plain RFC 1071 checksum (the value to store in the field). */
export function cksum(parts: Uint8Array[]): number {
  let s = 0;
  let odd = false;
  for (const p of parts) {
    for (let i = 0; i < p.length; i++) {
      s += odd ? p[i] : p[i] << 8;
      odd = !odd;
    }
  }
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 65536);
  return ~s & 0xffff;
}

function pseudo(src: number, dst: number, proto: number, len: number): Uint8Array {
  const p = new Uint8Array(12);
  put32(p, 0, src);
  put32(p, 4, dst);
  p[9] = proto;
  put16(p, 10, len);
  return p;
}

export function eth(dst: Uint8Array, src: Uint8Array, type: number, payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(14 + payload.length);
  f.set(dst, 0);
  f.set(src, 6);
  put16(f, 12, type);
  f.set(payload, 14);
  return f;
}

export interface Ipv4Opts {
  id?: number;
  flagsFrag?: number;
  ttl?: number;
  options?: Uint8Array;
}

export function ipv4(src: number, dst: number, proto: number, payload: Uint8Array, o: Ipv4Opts = {}): Uint8Array {
  const optLen = o.options?.length ?? 0;
  const h = 20 + optLen;
  const p = new Uint8Array(h + payload.length);
  p[0] = 0x40 | (h / 4);
  put16(p, 2, p.length);
  put16(p, 4, o.id ?? 1);
  put16(p, 6, o.flagsFrag ?? 0x4000);
  p[8] = o.ttl ?? 64;
  p[9] = proto;
  put32(p, 12, src);
  put32(p, 16, dst);
  if (o.options) p.set(o.options, 20);
  put16(p, 10, cksum([p.subarray(0, h)]));
  p.set(payload, h);
  return p;
}

export function udp(src: number, dst: number, sport: number, dport: number, payload: Uint8Array): Uint8Array {
  const u = new Uint8Array(8 + payload.length);
  put16(u, 0, sport);
  put16(u, 2, dport);
  put16(u, 4, u.length);
  u.set(payload, 8);
  let c = cksum([pseudo(src, dst, 17, u.length), u]);
  if (c === 0) c = 0xffff;
  put16(u, 6, c);
  return u;
}

export interface TcpFields {
  src: number;
  dst: number;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  window?: number;
  mss?: number;
  payload?: Uint8Array;
}

export function tcp(t: TcpFields): Uint8Array {
  const opt = t.mss ? 4 : 0;
  const payload = t.payload ?? new Uint8Array(0);
  const s = new Uint8Array(20 + opt + payload.length);
  put16(s, 0, t.sport);
  put16(s, 2, t.dport);
  put32(s, 4, t.seq >>> 0);
  put32(s, 8, t.ack >>> 0);
  s[12] = ((20 + opt) / 4) << 4;
  s[13] = t.flags;
  put16(s, 14, t.window ?? 65535);
  if (t.mss) {
    s[20] = 2;
    s[21] = 4;
    put16(s, 22, t.mss);
  }
  s.set(payload, 20 + opt);
  put16(s, 16, cksum([pseudo(t.src, t.dst, 6, s.length), s]));
  return s;
}

export function tcpFrame(t: TcpFields, dstMac = GW_MAC): Uint8Array {
  return eth(dstMac, GUEST_MAC, 0x0800, ipv4(t.src, t.dst, 6, tcp(t)));
}

export function udpFrame(src: number, dst: number, sport: number, dport: number, payload: Uint8Array, dstMac = GW_MAC): Uint8Array {
  return eth(dstMac, GUEST_MAC, 0x0800, ipv4(src, dst, 17, udp(src, dst, sport, dport, payload), { flagsFrag: 0 }));
}

export function arpRequest(targetIp: number, senderIp = GUEST_IP, senderMac = GUEST_MAC): Uint8Array {
  const a = new Uint8Array(28);
  a.set([0, 1, 8, 0, 6, 4, 0, 1]);
  a.set(senderMac, 8);
  put32(a, 14, senderIp);
  put32(a, 24, targetIp);
  return eth(BCAST_MAC, senderMac, 0x0806, a);
}

export function arpReply(targetMac: Uint8Array, targetIp: number, senderIp = GUEST_IP): Uint8Array {
  const a = new Uint8Array(28);
  a.set([0, 1, 8, 0, 6, 4, 0, 2]);
  a.set(GUEST_MAC, 8);
  put32(a, 14, senderIp);
  a.set(targetMac, 18);
  put32(a, 24, targetIp);
  return eth(targetMac, GUEST_MAC, 0x0806, a);
}

export function icmpEcho(dst: number, id: number, seq: number, data: Uint8Array): Uint8Array {
  const m = new Uint8Array(8 + data.length);
  m[0] = 8;
  put16(m, 4, id);
  put16(m, 6, seq);
  m.set(data, 8);
  put16(m, 2, cksum([m]));
  return eth(GW_MAC, GUEST_MAC, 0x0800, ipv4(GUEST_IP, dst, 1, m));
}

export interface DhcpOpts {
  xid: number;
  broadcast?: boolean;
  ciaddr?: number;
  requested?: number;
  serverId?: number;
}

export function dhcpFrame(type: number, o: DhcpOpts): Uint8Array {
  const b = new Uint8Array(300);
  b[0] = 1;
  b[1] = 1;
  b[2] = 6;
  put32(b, 4, o.xid);
  if (o.broadcast) b[10] = 0x80;
  put32(b, 12, o.ciaddr ?? 0);
  b.set(GUEST_MAC, 28);
  put32(b, 236, 0x63825363);
  let p = 240;
  b[p++] = 53; b[p++] = 1; b[p++] = type;
  if (o.requested !== undefined) { b[p++] = 50; b[p++] = 4; put32(b, p, o.requested); p += 4; }
  if (o.serverId !== undefined) { b[p++] = 54; b[p++] = 4; put32(b, p, o.serverId); p += 4; }
  b[p++] = 55; b[p++] = 3; b[p++] = 1; b[p++] = 3; b[p++] = 6;
  b[p++] = 255;
  const src = o.ciaddr ?? 0;
  const dst = o.ciaddr ? GW_IP : 0xffffffff;
  return eth(o.ciaddr ? GW_MAC : BCAST_MAC, GUEST_MAC, 0x0800, ipv4(src, dst, 17, udp(src, dst, 68, 67, b), { flagsFrag: 0 }));
}

export function parseDhcpOptions(p: Uint8Array): Map<number, Uint8Array> {
  const m = new Map<number, Uint8Array>();
  for (let i = 240; i < p.length; ) {
    if (p[i] === 255) break;
    if (p[i] === 0) { i++; continue; }
    m.set(p[i], p.subarray(i + 2, i + 2 + p[i + 1]));
    i += 2 + p[i + 1];
  }
  return m;
}

/** A DNS query for `name` of type `type` (1 = A, 28 = AAAA). */
export function dnsQuery(id: number, name: string, type: number): Uint8Array {
  const labels = name.split('.').filter((x) => x);
  const q = new Uint8Array(12 + labels.reduce((n, l) => n + l.length + 1, 0) + 5);
  put16(q, 0, id);
  q[2] = 1; // RD
  put16(q, 4, 1);
  let p = 12;
  for (const l of labels) {
    q[p++] = l.length;
    for (const ch of l) q[p++] = ch.charCodeAt(0);
  }
  q[p++] = 0;
  put16(q, p, type);
  put16(q, p + 2, 1);
  return q;
}

export interface DnsAnswer {
  id: number;
  rcode: number;
  answers: { type: number; data: Uint8Array }[];
}

/** Parses answers of a response whose question is the one we asked (answers use name pointers or full names). */
export function parseDnsResponse(r: Uint8Array): DnsAnswer {
  let p = 12;
  const skipName = () => {
    for (;;) {
      const n = r[p];
      if (n === 0) { p++; return; }
      if ((n & 0xc0) === 0xc0) { p += 2; return; }
      p += n + 1;
    }
  };
  for (let i = 0; i < u16(r, 4); i++) { skipName(); p += 4; }
  const answers: DnsAnswer['answers'] = [];
  for (let i = 0; i < u16(r, 6); i++) {
    skipName();
    const type = u16(r, p);
    const len = u16(r, p + 8);
    answers.push({ type, data: r.slice(p + 10, p + 10 + len) });
    p += 10 + len;
  }
  return { id: u16(r, 0), rcode: r[3] & 15, answers };
}

// ---- parsing what the stack sends ----

export interface Parsed {
  raw: Uint8Array;
  dstMac: Uint8Array;
  srcMac: Uint8Array;
  type: number;
  arp?: { op: number; senderMac: Uint8Array; senderIp: number; targetIp: number };
  ip?: { src: number; dst: number; proto: number; headerOk: boolean; payload: Uint8Array; flagsFrag: number };
  icmp?: { type: number; code: number; ok: boolean; id: number; seq: number; data: Uint8Array };
  udp?: { sport: number; dport: number; ok: boolean; payload: Uint8Array };
  tcp?: { sport: number; dport: number; seq: number; ack: number; flags: number; window: number; mss: number; ok: boolean; payload: Uint8Array };
}

export function parseFrame(f: Uint8Array): Parsed {
  const r: Parsed = { raw: f, dstMac: f.slice(0, 6), srcMac: f.slice(6, 12), type: u16(f, 12) };
  if (r.type === 0x0806) {
    r.arp = { op: u16(f, 20), senderMac: f.slice(22, 28), senderIp: u32(f, 28), targetIp: u32(f, 38) };
  } else if (r.type === 0x0800) {
    const h = (f[14] & 15) * 4;
    const total = u16(f, 16);
    const payload = f.slice(14 + h, 14 + total);
    const src = u32(f, 26);
    const dst = u32(f, 30);
    r.ip = { src, dst, proto: f[23], headerOk: cksum([f.subarray(14, 14 + h)]) === 0, payload, flagsFrag: u16(f, 20) };
    if (f[23] === 1) {
      r.icmp = { type: payload[0], code: payload[1], ok: cksum([payload]) === 0, id: u16(payload, 4), seq: u16(payload, 6), data: payload.slice(8) };
    } else if (f[23] === 17) {
      r.udp = { sport: u16(payload, 0), dport: u16(payload, 2), ok: cksum([pseudo(src, dst, 17, payload.length), payload]) === 0, payload: payload.slice(8, u16(payload, 4)) };
    } else if (f[23] === 6) {
      const th = (payload[12] >>> 4) * 4;
      let mss = 0;
      for (let i = 20; i < th; ) {
        if (payload[i] === 0) break;
        if (payload[i] === 1) { i++; continue; }
        if (payload[i] === 2) mss = u16(payload, i + 2);
        i += payload[i + 1];
      }
      r.tcp = {
        sport: u16(payload, 0), dport: u16(payload, 2), seq: u32(payload, 4), ack: u32(payload, 8), flags: payload[13],
        window: u16(payload, 14), mss, ok: cksum([pseudo(src, dst, 6, payload.length), payload]) === 0, payload: payload.slice(th),
      };
    }
  }
  return r;
}

// ---- the scripted guest ----

type Waiter = { pred: (p: Parsed) => boolean; resolve: (p: Parsed) => void; reject: (e: Error) => void; timer: NodeJS.Timeout };

/** Drives a backend as a guest would. Frames are handled asynchronously, never inside toGuest. */
export class FakeGuest {
  readonly frames: Parsed[] = [];
  badChecksums = 0;
  private waiters: Waiter[] = [];
  private readonly tcps = new Set<GuestTcp>();
  private listeners = new Map<number, (syn: Parsed) => void>();
  /** Return true to ignore a frame (as if the guest's ring were full). */
  dropFilter: ((p: Parsed) => boolean) | null = null;

  constructor(readonly backend: NetBackend, readonly ipAddr = GUEST_IP) {
    backend.start((frame) => {
      const copy = frame.slice();
      queueMicrotask(() => this.receive(copy));
    });
  }

  send(frame: Uint8Array): void {
    this.backend.fromGuest(frame);
  }

  waitFor(pred: (p: Parsed) => boolean, ms = 3000, what = 'frame'): Promise<Parsed> {
    const seen = this.frames.find(pred);
    if (seen) {
      this.frames.splice(this.frames.indexOf(seen), 1);
      return Promise.resolve(seen);
    }
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        pred, resolve, reject,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          reject(new Error(`timed out waiting for ${what}`));
        }, ms),
      };
      this.waiters.push(w);
    });
  }

  /** Answer SYNs to this guest port with a new GuestTcp. */
  listen(port: number, onConn: (c: GuestTcp) => void, opts: GuestTcpOpts = {}): void {
    this.listeners.set(port, (syn) => {
      const t = syn.tcp!;
      const c = new GuestTcp(this, port, syn.ip!.src, t.sport, opts);
      c.acceptFrom(syn);
      onConn(c);
    });
  }

  register(c: GuestTcp): void {
    this.tcps.add(c);
  }

  unregister(c: GuestTcp): void {
    this.tcps.delete(c);
  }

  private receive(f: Uint8Array): void {
    const p = parseFrame(f);
    if (p.ip && !p.ip.headerOk) this.badChecksums++;
    if ((p.tcp && !p.tcp.ok) || (p.udp && !p.udp.ok) || (p.icmp && !p.icmp.ok)) this.badChecksums++;
    if (this.dropFilter?.(p)) return;
    if (p.arp && p.arp.op === 1 && p.arp.targetIp === this.ipAddr) {
      this.send(arpReply(p.arp.senderMac, p.arp.senderIp, this.ipAddr));
      return;
    }
    if (p.tcp && p.ip) {
      for (const c of this.tcps) {
        if (c.localPort === p.tcp.dport && c.remoteIp === p.ip.src && c.remotePort === p.tcp.sport) {
          c.onSegment(p);
          return;
        }
      }
      const l = this.listeners.get(p.tcp.dport);
      if (l && p.tcp.flags === TCP_SYN) {
        l(p);
        return;
      }
    }
    const w = this.waiters.find((x) => x.pred(p));
    if (w) {
      clearTimeout(w.timer);
      this.waiters = this.waiters.filter((x) => x !== w);
      w.resolve(p);
      return;
    }
    this.frames.push(p);
  }

  close(): void {
    for (const w of this.waiters) clearTimeout(w.timer);
    for (const c of this.tcps) c.stopTimers();
    this.waiters = [];
  }
}

export interface GuestTcpOpts {
  mss?: number;
  window?: number;
  /** Ignore every n-th segment that carries data or FIN. */
  dropEvery?: number;
  /** Received data fills the window until release() (an application that does not read). */
  hold?: boolean;
}

function sd(a: number, b: number): number {
  return (a - b) | 0;
}

/** A small guest-side TCP endpoint: in-order receive, go-back-N send. */
export class GuestTcp {
  state: 'closed' | 'syn-sent' | 'syn-rcvd' | 'established' | 'reset' = 'closed';
  iss = 1000;
  sndUna = 1000;
  sndNxt = 1000;
  sndMax = 1000;
  finSeq: number | null = null;
  peerWnd = 0;
  peerMss = 0;
  rcvNxt = 0;
  readonly received: Uint8Array[] = [];
  receivedBytes = 0;
  finReceived = false;
  finAcked = false;
  retransmits = 0;
  dropped = 0;
  probesSeen = 0;
  private out: Uint8Array[] = [];
  private outBytes = 0;
  private sendBuf = new Uint8Array(0);
  private finWanted = false;
  private segCount = 0;
  private timer: NodeJS.Timeout | null = null;
  private lastUna = -1;
  private events: (() => void)[] = [];
  private unread = 0;

  constructor(readonly guest: FakeGuest, readonly localPort: number, readonly remoteIp: number, readonly remotePort: number, readonly opts: GuestTcpOpts = {}) {
    guest.register(this);
  }

  /** Sends a SYN; resolves to 'established' or 'reset'. */
  connect(ms = 5000): Promise<'established' | 'reset'> {
    this.state = 'syn-sent';
    this.iss = (Math.random() * 0xffffffff) >>> 0;
    this.sndUna = this.iss;
    this.sndNxt = this.sndMax = (this.iss + 1) >>> 0;
    this.seg(TCP_SYN, this.iss, 0, undefined, this.opts.mss ?? 1460);
    this.armTimer();
    return this.until(() => this.state === 'established' || this.state === 'reset', ms, 'connect').then(() => this.state as 'established' | 'reset');
  }

  acceptFrom(syn: Parsed): void {
    const t = syn.tcp!;
    this.peerMss = t.mss;
    this.peerWnd = t.window;
    this.rcvNxt = (t.seq + 1) >>> 0;
    this.sndUna = this.iss;
    this.sndNxt = this.sndMax = (this.iss + 1) >>> 0;
    this.state = 'syn-rcvd';
    this.seg(TCP_SYN | TCP_ACK, this.iss, this.rcvNxt, undefined, this.opts.mss ?? 1460);
    this.armTimer();
  }

  write(data: Uint8Array): void {
    this.out.push(data);
    this.outBytes += data.length;
    this.pump();
  }

  shutdown(): void {
    this.finWanted = true;
    this.pump();
  }

  /** The application read everything: reopen the window. */
  release(): void {
    this.unread = 0;
    this.seg(TCP_ACK, this.sndNxt, this.rcvNxt);
  }

  window(): number {
    return Math.max(0, (this.opts.window ?? 65535) - this.unread);
  }

  sendRaw(flags: number, seq: number, ack: number, payload?: Uint8Array): void {
    this.seg(flags, seq, ack, payload);
  }

  sendRst(): void {
    this.seg(TCP_RST | TCP_ACK, this.sndNxt, this.rcvNxt);
    this.state = 'reset';
    this.stopTimers();
  }

  data(): Uint8Array {
    return Buffer.concat(this.received);
  }

  until(cond: () => boolean, ms: number, what: string): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for ${what} (state ${this.state}, received ${this.receivedBytes}, una ${this.sndUna - this.iss})`)), ms);
      const check = () => {
        if (cond()) {
          clearTimeout(t);
          resolve();
          return true;
        }
        return false;
      };
      const loop = () => {
        if (!check()) this.events.push(loop);
      };
      this.events.push(loop);
    });
  }

  stopTimers(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  onSegment(p: Parsed): void {
    const t = p.tcp!;
    if (t.flags & TCP_RST) {
      this.state = 'reset';
      this.stopTimers();
      this.notify();
      return;
    }
    if (this.state === 'syn-sent') {
      if ((t.flags & (TCP_SYN | TCP_ACK)) === (TCP_SYN | TCP_ACK) && t.ack === ((this.iss + 1) >>> 0)) {
        this.rcvNxt = (t.seq + 1) >>> 0;
        this.sndUna = t.ack;
        this.peerWnd = t.window;
        this.peerMss = t.mss;
        this.state = 'established';
        this.seg(TCP_ACK, this.sndNxt, this.rcvNxt);
        this.pump();
      }
      this.notify();
      return;
    }
    if (this.state === 'syn-rcvd') {
      if (t.flags & TCP_SYN) {
        this.seg(TCP_SYN | TCP_ACK, this.iss, this.rcvNxt, undefined, this.opts.mss ?? 1460);
        return;
      }
      if ((t.flags & TCP_ACK) && t.ack === ((this.iss + 1) >>> 0)) {
        this.state = 'established';
        this.sndUna = t.ack;
      }
    }
    if (this.state !== 'established') return;
    if ((t.payload.length > 0 || t.flags & TCP_FIN) && this.opts.dropEvery && ++this.segCount % this.opts.dropEvery === 0) {
      this.dropped++;
      return;
    }
    if (t.flags & TCP_ACK) {
      const acked = sd(t.ack, this.sndUna);
      if (acked > 0 && sd(t.ack, this.sndMax) <= 0) {
        this.sendBuf = this.sendBuf.subarray(Math.min(acked, this.sendBuf.length));
        this.sndUna = t.ack;
        if (this.finSeq !== null && sd(t.ack, this.finSeq) > 0) this.finAcked = true;
        if (sd(this.sndNxt, this.sndUna) < 0) this.sndNxt = this.sndUna;
      }
      this.peerWnd = t.window;
    }
    if (t.payload.length === 0 && !(t.flags & TCP_FIN) && sd(t.seq, this.rcvNxt) < 0) {
      this.probesSeen++;
      this.seg(TCP_ACK, this.sndNxt, this.rcvNxt); // an old sequence number (window probe): re-ACK
    }
    if (t.payload.length > 0 || t.flags & TCP_FIN) {
      if (t.seq === this.rcvNxt && !this.finReceived) {
        if (t.payload.length) {
          if (this.opts.hold && t.payload.length > this.window()) {
            this.seg(TCP_ACK, this.sndNxt, this.rcvNxt);
            return;
          }
          this.received.push(t.payload);
          this.receivedBytes += t.payload.length;
          if (this.opts.hold) this.unread += t.payload.length;
          this.rcvNxt = (this.rcvNxt + t.payload.length) >>> 0;
        }
        if (t.flags & TCP_FIN) {
          this.finReceived = true;
          this.rcvNxt = (this.rcvNxt + 1) >>> 0;
        }
      }
      this.seg(TCP_ACK, this.sndNxt, this.rcvNxt);
    }
    this.pump();
    this.notify();
  }

  private pump(): void {
    if (this.state !== 'established') return;
    if (this.outBytes > 0) {
      this.sendBuf = Buffer.concat([this.sendBuf, ...this.out]);
      this.out = [];
      this.outBytes = 0;
    }
    const mss = Math.min(this.peerMss || 536, this.opts.mss ?? 1460);
    for (;;) {
      const inflight = sd(this.sndNxt, this.sndUna);
      const unsent = this.sendBuf.length - inflight;
      if (unsent <= 0) break;
      const room = this.peerWnd - inflight;
      if (room <= 0) break;
      const n = Math.min(unsent, room, mss);
      this.seg(TCP_ACK | TCP_PSH, this.sndNxt, this.rcvNxt, this.sendBuf.subarray(inflight, inflight + n));
      this.sndNxt = (this.sndNxt + n) >>> 0;
      if (sd(this.sndNxt, this.sndMax) > 0) this.sndMax = this.sndNxt;
    }
    if (this.finWanted && !this.finAcked && sd(this.sndNxt, this.sndUna) === this.sendBuf.length) {
      this.finSeq = this.sndNxt;
      this.seg(TCP_FIN | TCP_ACK, this.sndNxt, this.rcvNxt);
      this.sndNxt = (this.sndNxt + 1) >>> 0;
    }
    if (sd(this.sndNxt, this.sndMax) > 0) this.sndMax = this.sndNxt;
    this.armTimer();
  }

  private armTimer(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.state === 'reset' || this.state === 'closed') return;
      const outstanding = sd(this.sndNxt, this.sndUna) > 0 || (this.sendBuf.length > 0 && this.peerWnd === 0);
      if (!outstanding) return;
      if (this.sndUna === this.lastUna || this.peerWnd === 0) {
        this.retransmits++;
        if (this.state === 'syn-sent') this.seg(TCP_SYN, this.iss, 0, undefined, this.opts.mss ?? 1460);
        else if (this.state === 'syn-rcvd') this.seg(TCP_SYN | TCP_ACK, this.iss, this.rcvNxt, undefined, this.opts.mss ?? 1460);
        else {
          this.sndNxt = this.sndUna;
          if (this.peerWnd === 0 && this.sendBuf.length > 0) {
            this.seg(TCP_ACK, this.sndNxt, this.rcvNxt, this.sendBuf.subarray(0, 1));
          } else this.pump();
        }
      }
      this.lastUna = this.sndUna;
      this.armTimer();
    }, 200);
  }

  private seg(flags: number, seq: number, ack: number, payload?: Uint8Array, mss?: number): void {
    this.guest.send(tcpFrame({ src: this.guest.ipAddr, dst: this.remoteIp, sport: this.localPort, dport: this.remotePort, seq, ack, flags, window: this.window(), payload, mss }));
  }

  private notify(): void {
    const ev = this.events;
    this.events = [];
    for (const f of ev) f();
  }
}
