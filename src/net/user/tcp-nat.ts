// The table of guest TCP connections: guest SYNs become host connections (or
// RSTs when refused), port-forwarded host connections become SYNs toward the
// guest, and every segment is framed here.

import type { Ip4 } from './addr.js';
import type { HostApi, HostTcpSocket, TcpSocketEvents } from './host-api.js';
import { PROTO_TCP } from './ipv4.js';
import { L4_OFF, type Output } from './output.js';
import { TcpConn, type TcpEnv, type TcpTuning } from './tcp.js';
import { ACK, FIN, RST, SYN, TCP_HLEN, seqAdd, writeTcpHeader, type TcpSegment } from './tcp-segment.js';

/** Where a guest-visible destination goes on the host: an address, or why not ("host": the host itself, not allowed). */
export type Route = { addr: string; port?: number } | { refused: 'denied' | 'unroutable' | 'host' };

const MAX_CONNS = 4096;
/** Gateway-side ports for port-forwarded connections. */
const FWD_PORT_FIRST = 49152;

export function connKey(guestIp: Ip4, guestPort: number, remoteIp: Ip4, remotePort: number): string {
  return `${guestIp}:${guestPort}>${remoteIp}:${remotePort}`;
}

export class TcpNat implements TcpEnv {
  readonly conns = new Map<string, TcpConn>();
  private ackQueue: TcpConn[] = [];
  private ackScheduled = false;
  private nextFwdPort = FWD_PORT_FIRST;

  constructor(
    private readonly out: Output,
    private readonly api: HostApi,
    private readonly tuning: TcpTuning,
    private readonly route: (dst: Ip4, port: number) => Route,
    private readonly drop: (reason: string) => void,
  ) {}

  /** A checked segment from the guest. */
  segment(src: Ip4, dst: Ip4, seg: TcpSegment, frame: Uint8Array): void {
    const key = connKey(src, seg.srcPort, dst, seg.dstPort);
    const c = this.conns.get(key);
    if (c) {
      if (c.state !== 'linger' || (seg.flags & (SYN | ACK)) !== SYN) {
        c.segment(seg, frame);
        return;
      }
      c.abort(); // the guest reuses the port of a finished connection: start afresh
    }
    if (seg.flags & RST) return;
    if ((seg.flags & (SYN | ACK)) !== SYN) {
      this.drop('tcp-no-connection');
      this.resetFor(src, dst, seg);
      return;
    }
    const r = this.route(dst, seg.dstPort);
    if ('refused' in r) {
      this.drop(`tcp-${r.refused === 'host' ? 'host-denied' : r.refused}`);
      this.resetFor(src, dst, seg);
      return;
    }
    if (this.conns.size >= MAX_CONNS) {
      this.drop('tcp-table-full');
      this.resetFor(src, dst, seg);
      return;
    }
    const conn = TcpConn.passive(this, this.tuning, key, src, seg.srcPort, dst, seg.dstPort, randomIss(), seg);
    this.conns.set(key, conn);
    const sock = this.api.tcpConnect(r.addr, r.port ?? seg.dstPort, this.events(conn, () => conn.hostConnected(sock)));
    conn.host = sock;
  }

  /** A host connection accepted by a port forward: open a connection to the guest. */
  forward(sock: HostTcpSocket, gatewayIp: Ip4, guestIp: Ip4, guestPort: number): void {
    if (this.conns.size >= MAX_CONNS) {
      sock.reset();
      return;
    }
    let port = this.nextFwdPort;
    let key = connKey(guestIp, guestPort, gatewayIp, port);
    for (let tries = 0; this.conns.has(key) && tries < 16384; tries++) {
      port = port >= 65535 ? FWD_PORT_FIRST : port + 1;
      key = connKey(guestIp, guestPort, gatewayIp, port);
    }
    this.nextFwdPort = port >= 65535 ? FWD_PORT_FIRST : port + 1;
    const conn = TcpConn.active(this, this.tuning, key, guestIp, guestPort, gatewayIp, port, randomIss(), sock);
    this.conns.set(key, conn);
    sock.listen(this.events(conn, () => {}));
  }

  close(): void {
    for (const c of [...this.conns.values()]) c.abort();
    this.conns.clear();
    this.ackQueue = [];
  }

  private events(c: TcpConn, connected: () => void): TcpSocketEvents {
    return {
      connect: connected,
      data: (d) => c.hostData(d),
      end: () => c.hostEnd(),
      drain: () => c.hostDrain(),
      error: () => c.hostError(),
      close: () => {
        // A close without an error after both FINs is the normal end; the
        // connection may still be waiting for the guest's last ACK.
      },
    };
  }

  // ---- TcpEnv ----

  emit(c: TcpConn, flags: number, seq: number, dataOff: number, len: number, mssOption: number): void {
    const b = this.out.buf;
    const hlen = mssOption ? TCP_HLEN + 4 : TCP_HLEN;
    if (len > 0) c.copyOut(b, L4_OFF + hlen, dataOff, len);
    let wnd = 0;
    if ((flags & RST) === 0) {
      wnd = c.rcvWindow();
      c.lastAdvWnd = wnd;
    }
    writeTcpHeader(b, L4_OFF, c.remoteIp, c.guestIp, c.remotePort, c.guestPort, seq, flags & ACK ? c.rcvNxt : 0, flags, wnd, mssOption, len);
    this.out.sendIp(c.remoteIp, c.guestIp, PROTO_TCP, hlen + len, true);
  }

  scheduleAck(c: TcpConn): void {
    this.ackQueue.push(c);
    if (this.ackScheduled) return;
    this.ackScheduled = true;
    // Frames from the guest arrive in bursts within one turn of the event loop:
    // one ACK after the burst instead of one per segment.
    queueMicrotask(() => {
      this.ackScheduled = false;
      const q = this.ackQueue;
      this.ackQueue = [];
      for (const conn of q) if (conn.ackPending && conn.state === 'established') conn.sendAck();
    });
  }

  setTimer(fn: () => void, ms: number): unknown {
    return this.api.setTimer(fn, ms);
  }

  clearTimer(t: unknown): void {
    this.api.clearTimer(t);
  }

  closed(c: TcpConn): void {
    if (this.conns.get(c.key) === c) this.conns.delete(c.key);
  }

  /** RST for a segment that belongs to no connection (RFC 9293 3.10.7.1). */
  private resetFor(src: Ip4, dst: Ip4, seg: TcpSegment): void {
    let seq = 0;
    let ack = 0;
    let flags = RST;
    if (seg.flags & ACK) {
      seq = seg.ack;
    } else {
      ack = seqAdd(seg.seq, seg.len + (seg.flags & SYN ? 1 : 0) + (seg.flags & FIN ? 1 : 0));
      flags |= ACK;
    }
    writeTcpHeader(this.out.buf, L4_OFF, dst, src, seg.dstPort, seg.srcPort, seq, ack, flags, 0, 0, 0);
    this.out.sendIp(dst, src, PROTO_TCP, TCP_HLEN, true);
  }
}

function randomIss(): number {
  return Math.floor(Math.random() * 0x100000000) >>> 0;
}
