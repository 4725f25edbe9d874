// One TCP connection as the guest sees it: tsvisor plays the far end, and relays
// the byte stream to a host socket. Kept free of Node APIs: the host side is the
// small TcpHost interface and frames go out through TcpEnv.
//
// Simplifications (the peer is a local guest, not the Internet): no window
// scaling, SACK or timestamps are offered; out-of-order segments from the guest
// are dropped and re-ACKed; no congestion control toward the guest beyond its
// advertised window, go-back-N on timeout or after three duplicate ACKs; a
// closed connection lingers briefly instead of a full TIME_WAIT.

import type { Ip4 } from './addr.js';
import { ACK, FIN, PSH, RST, SYN, seqAdd, seqDiff, type TcpSegment } from './tcp-segment.js';

/** The host-socket end of a connection. */
export interface TcpHost {
  /** Queue bytes toward the host peer; the callee copies them. */
  write(data: Uint8Array): void;
  /** Bytes queued toward the host peer and not yet handed to the kernel. */
  pendingBytes(): number;
  /** The guest finished sending (half-close). */
  end(): void;
  /** Abort, with a RST toward the host peer when possible. */
  reset(): void;
  /** Release the socket (both directions are finished). */
  destroy(): void;
  pause(): void;
  resume(): void;
}

export interface TcpEnv {
  /**
   * Send a segment to the guest. The payload is `len` bytes of the connection's
   * send buffer from `dataOff` (counted from the first unacknowledged byte).
   */
  emit(c: TcpConn, flags: number, seq: number, dataOff: number, len: number, mssOption: number): void;
  /** Send a bare ACK soon (coalesces ACKs for a burst of guest segments). */
  scheduleAck(c: TcpConn): void;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(t: unknown): void;
  /** The connection is finished; forget it. */
  closed(c: TcpConn): void;
}

export interface TcpTuning {
  rtoMs: number;
  maxRtoMs: number;
  maxRetries: number;
  connectTimeoutMs: number;
  lingerMs: number;
}

export const DEFAULT_TUNING: TcpTuning = { rtoMs: 250, maxRtoMs: 4000, maxRetries: 12, connectTimeoutMs: 15000, lingerMs: 2000 };

export const OUR_MSS = 1460;
/** Bytes from the host waiting for the guest's ACK before the host socket is paused. */
const SND_HIGH = 256 * 1024;
const SND_LOW = 64 * 1024;
/** Guest bytes queued on the host socket at which the advertised window closes. */
const RCV_BUF = 96 * 1024;
const MAX_WINDOW = 0xffff;

export type TcpState = 'connecting' | 'syn-sent' | 'syn-rcvd' | 'established' | 'linger' | 'closed';

export class TcpConn {
  state: TcpState;
  host: TcpHost | null = null;
  readonly iss: number;
  sndUna: number;
  sndNxt: number;
  /** Highest sequence number sent, so ACKs for data sent before a go-back stay valid. */
  sndMax: number;
  sndWnd = 0;
  mss = 536;
  rcvNxt = 0;
  lastAdvWnd = 0;
  /** A bare ACK is owed to the guest. */
  ackPending = false;
  finQueued = false;
  finAcked = false;
  finReceived = false;
  private chunks: Uint8Array[] = [];
  private headOff = 0;
  bufBytes = 0;
  private hostPaused = false;
  private timer: unknown = null;
  private rto: number;
  private retries = 0;
  private dupAcks = 0;

  constructor(
    private readonly env: TcpEnv,
    private readonly tuning: TcpTuning,
    readonly key: string,
    readonly guestIp: Ip4,
    readonly guestPort: number,
    readonly remoteIp: Ip4,
    readonly remotePort: number,
    iss: number,
    state: TcpState,
  ) {
    this.iss = iss >>> 0;
    this.sndUna = this.sndNxt = this.sndMax = this.iss;
    this.rto = tuning.rtoMs;
    this.state = state;
  }

  /** Guest SYN: wait for the host connection before answering. */
  static passive(env: TcpEnv, tuning: TcpTuning, key: string, guestIp: Ip4, guestPort: number, remoteIp: Ip4, remotePort: number, iss: number, syn: TcpSegment): TcpConn {
    const c = new TcpConn(env, tuning, key, guestIp, guestPort, remoteIp, remotePort, iss, 'connecting');
    c.rcvNxt = seqAdd(syn.seq, 1);
    c.mss = clampMss(syn.mss);
    c.sndWnd = syn.window;
    c.setTimer(tuning.connectTimeoutMs);
    return c;
  }

  /** Host-side accept (port forward): send our SYN to the guest. */
  static active(env: TcpEnv, tuning: TcpTuning, key: string, guestIp: Ip4, guestPort: number, remoteIp: Ip4, remotePort: number, iss: number, host: TcpHost): TcpConn {
    const c = new TcpConn(env, tuning, key, guestIp, guestPort, remoteIp, remotePort, iss, 'syn-sent');
    c.host = host;
    host.pause();
    c.hostPaused = true;
    c.sendSyn();
    return c;
  }

  // ---- events from the host side ----

  hostConnected(host: TcpHost): void {
    if (this.state !== 'connecting') {
      host.reset();
      return;
    }
    this.host = host;
    this.state = 'syn-rcvd';
    this.clearTimer();
    this.sendSyn();
  }

  /** Connect failed (refused, unreachable, timed out): refuse the guest's SYN. */
  hostFailed(): void {
    if (this.state === 'closed') return;
    this.env.emit(this, RST | ACK, this.state === 'connecting' ? 0 : this.sndNxt, 0, 0, 0);
    this.close();
  }

  hostData(data: Uint8Array): void {
    if (this.state === 'closed' || this.finQueued || data.length === 0) return;
    this.chunks.push(data);
    this.bufBytes += data.length;
    this.pump();
  }

  hostEnd(): void {
    if (this.state === 'closed' || this.finQueued) return;
    this.finQueued = true;
    this.pump();
  }

  /** The host socket's write queue drained: reopen a window we had shrunk. */
  hostDrain(): void {
    if (this.state !== 'established') return;
    if (this.lastAdvWnd < this.rcvWindow() && this.lastAdvWnd < 4 * this.mss) this.sendAck();
  }

  /** The host socket failed or was reset. */
  hostError(): void {
    if (this.state === 'closed') return;
    if (this.state === 'connecting') return this.hostFailed();
    this.host = null;
    if (this.state !== 'linger') this.env.emit(this, RST | ACK, this.sndNxt, 0, 0, 0);
    this.close();
  }

  /** Tear down without telling the guest (the backend is closing). */
  abort(): void {
    // Lingering connections finished cleanly on both sides: nothing to reset.
    if (this.state !== 'linger') this.host?.reset();
    this.host = null;
    this.close();
  }

  /** Receive window we advertise: what the host socket can still absorb. */
  rcvWindow(): number {
    const pending = this.host ? this.host.pendingBytes() : 0;
    return Math.max(0, Math.min(MAX_WINDOW, RCV_BUF - pending));
  }

  /** Copies send-buffer bytes [from, from+len) into dst at `at`. */
  copyOut(dst: Uint8Array, at: number, from: number, len: number): void {
    let skip = this.headOff + from;
    for (const ch of this.chunks) {
      if (len === 0) return;
      if (skip >= ch.length) {
        skip -= ch.length;
        continue;
      }
      const n = Math.min(len, ch.length - skip);
      dst.set(ch.subarray(skip, skip + n), at);
      at += n;
      len -= n;
      skip = 0;
    }
  }

  sendAck(): void {
    this.ackPending = false;
    this.env.emit(this, ACK, this.sndNxt, 0, 0, 0);
  }

  // ---- segments from the guest ----

  segment(seg: TcpSegment, frame: Uint8Array): void {
    const f = seg.flags;
    if (f & RST) return this.guestRst(seg);
    switch (this.state) {
      case 'closed':
        return;
      case 'connecting':
        return; // a retransmitted SYN: still waiting for the host
      case 'syn-sent':
        if ((f & (SYN | ACK)) === (SYN | ACK) && seg.ack === seqAdd(this.iss, 1)) {
          this.rcvNxt = seqAdd(seg.seq, 1);
          this.sndUna = this.sndNxt = this.sndMax = seg.ack;
          this.sndWnd = seg.window;
          this.mss = clampMss(seg.mss);
          this.established();
          this.sendAck();
          this.pump();
        } else if (f & ACK) {
          this.env.emit(this, RST, seg.ack, 0, 0, 0);
        }
        return;
      case 'syn-rcvd':
        if (f & SYN) {
          if (seqAdd(seg.seq, 1) === this.rcvNxt) this.sendSyn();
          return;
        }
        if (seg.ack !== seqAdd(this.iss, 1)) {
          this.env.emit(this, RST, seg.ack, 0, 0, 0);
          return;
        }
        this.sndUna = seg.ack;
        this.established();
        break;
      case 'linger':
        if (seg.len > 0 || f & FIN) this.sendAck();
        return;
      case 'established':
        if (f & SYN) {
          this.sendAck();
          return;
        }
        break;
    }
    if ((f & ACK) === 0) return;
    if (!this.processAck(seg)) return;
    if (seg.len > 0 || f & FIN) this.processData(seg, frame);
    this.pump();
    this.maybeDone();
  }

  private guestRst(seg: TcpSegment): void {
    if (this.state === 'syn-sent') {
      if ((seg.flags & ACK) === 0 || seg.ack !== seqAdd(this.iss, 1)) return;
    } else {
      // Only a RST inside the window counts, so a stray one cannot kill the connection.
      const d = seqDiff(seg.seq, this.rcvNxt);
      if (d < 0 || d > Math.max(this.lastAdvWnd, 1)) return;
    }
    this.host?.reset();
    this.host = null;
    this.close();
  }

  private established(): void {
    this.state = 'established';
    this.clearTimer();
    this.retries = 0;
    this.rto = this.tuning.rtoMs;
    if (this.hostPaused && this.host) {
      this.hostPaused = false;
      this.host.resume();
    }
  }

  /** Returns false when the segment must be dropped. */
  private processAck(seg: TcpSegment): boolean {
    const acked = seqDiff(seg.ack, this.sndUna);
    if (acked > seqDiff(this.sndMax, this.sndUna)) {
      this.sendAck(); // acknowledges data never sent
      return false;
    }
    if (acked > 0) {
      let dataAcked = acked;
      if (this.finQueued && acked === this.bufBytes + 1) {
        this.finAcked = true;
        dataAcked = this.bufBytes;
      }
      this.consume(dataAcked);
      this.sndUna = seg.ack;
      if (seqDiff(this.sndNxt, this.sndUna) < 0) this.sndNxt = this.sndUna;
      this.retries = 0;
      this.rto = this.tuning.rtoMs;
      this.dupAcks = 0;
      this.clearTimer();
    } else if (acked === 0 && seg.len === 0 && (seg.flags & FIN) === 0 && seg.window === this.sndWnd && this.sndMax !== this.sndUna) {
      if (++this.dupAcks === 3) {
        // The guest lost a segment (its ring was full, so likely the ones after
        // it too): resend everything from the hole.
        this.dupAcks = 0;
        this.sndNxt = this.sndUna;
      }
    }
    if (acked >= 0) {
      // The window reopened: the persist timer must not fire as a retransmission
      // timeout for data sent just now.
      if (this.sndWnd === 0 && seg.window > 0 && this.sndMax === this.sndUna) this.clearTimer();
      this.sndWnd = seg.window;
    }
    return true;
  }

  private processData(seg: TcpSegment, frame: Uint8Array): void {
    if (this.finReceived) {
      this.sendAck();
      return;
    }
    const off = seqDiff(this.rcvNxt, seg.seq);
    if (off < 0 || off > seg.len) {
      this.sendAck(); // out of order (dropped) or an old duplicate
      return;
    }
    let n = seg.len - off;
    let fin = (seg.flags & FIN) !== 0;
    const wnd = this.rcvWindow();
    if (n > wnd) {
      n = wnd;
      fin = false;
    }
    if (n > 0) {
      this.host?.write(frame.subarray(seg.off + off, seg.off + off + n));
      this.rcvNxt = seqAdd(this.rcvNxt, n);
    }
    if (fin) {
      this.rcvNxt = seqAdd(this.rcvNxt, 1);
      this.finReceived = true;
      this.host?.end();
      this.sendAck();
    } else if (!this.ackPending) {
      this.ackPending = true;
      this.env.scheduleAck(this);
    }
  }

  /** Sends what the guest's window allows, then the FIN once the host has ended. */
  pump(): void {
    if (this.state !== 'established') return;
    for (;;) {
      const inflight = seqDiff(this.sndNxt, this.sndUna);
      const dataSent = Math.min(inflight, this.bufBytes);
      const avail = this.bufBytes - dataSent;
      const room = this.sndWnd - inflight;
      if (avail > 0 && room > 0) {
        const n = Math.min(avail, room, this.mss);
        this.env.emit(this, n === avail ? ACK | PSH : ACK, this.sndNxt, dataSent, n, 0);
        this.ackPending = false;
        this.advanceNxt(n);
        continue;
      }
      if (avail === 0 && this.finQueued && !this.finAcked && inflight === this.bufBytes) {
        this.env.emit(this, FIN | ACK, this.sndNxt, 0, 0, 0);
        this.ackPending = false;
        this.advanceNxt(1);
      }
      break;
    }
    if (this.timer === null && (this.sndMax !== this.sndUna || (this.bufBytes > 0 && this.sndWnd === 0))) this.setTimer(this.rto);
    if (this.host) {
      if (!this.hostPaused && this.bufBytes >= SND_HIGH) {
        this.hostPaused = true;
        this.host.pause();
      } else if (this.hostPaused && this.bufBytes <= SND_LOW) {
        this.hostPaused = false;
        this.host.resume();
      }
    }
  }

  private advanceNxt(n: number): void {
    this.sndNxt = seqAdd(this.sndNxt, n);
    if (seqDiff(this.sndNxt, this.sndMax) > 0) this.sndMax = this.sndNxt;
  }

  private consume(n: number): void {
    this.bufBytes -= n;
    let left = n + this.headOff;
    while (this.chunks.length > 0 && left >= this.chunks[0].length) {
      left -= this.chunks[0].length;
      this.chunks.shift();
    }
    this.headOff = left;
  }

  private sendSyn(): void {
    const flags = this.state === 'syn-sent' ? SYN : SYN | ACK;
    this.sndNxt = this.iss;
    this.env.emit(this, flags, this.iss, 0, 0, OUR_MSS);
    this.advanceNxt(1);
    if (this.timer === null) this.setTimer(this.rto);
  }

  private onTimer(): void {
    this.timer = null;
    switch (this.state) {
      case 'connecting':
        this.host?.reset();
        this.host = null;
        return this.hostFailed();
      case 'syn-sent':
      case 'syn-rcvd':
        if (++this.retries > this.tuning.maxRetries) return this.giveUp();
        this.rto = Math.min(this.rto * 2, this.tuning.maxRtoMs);
        this.sendSyn();
        return;
      case 'established':
        if (this.sndMax !== this.sndUna) {
          if (++this.retries > this.tuning.maxRetries) return this.giveUp();
          this.rto = Math.min(this.rto * 2, this.tuning.maxRtoMs);
          this.sndNxt = this.sndUna;
          this.pump();
        } else if (this.bufBytes > 0 && this.sndWnd === 0) {
          // Zero-window probe: an old sequence number makes the guest re-ACK with its window.
          this.env.emit(this, ACK, seqAdd(this.sndUna, -1), 0, 0, 0);
          this.rto = Math.min(this.rto * 2, this.tuning.maxRtoMs);
          this.setTimer(this.rto);
        }
        return;
      case 'linger':
        return this.close();
      case 'closed':
        return;
    }
  }

  private giveUp(): void {
    this.env.emit(this, RST | ACK, this.sndNxt, 0, 0, 0);
    this.abort();
  }

  private maybeDone(): void {
    if (this.state === 'established' && this.finReceived && this.finAcked) {
      this.state = 'linger';
      this.clearTimer();
      this.setTimer(this.tuning.lingerMs);
    }
  }

  private setTimer(ms: number): void {
    this.clearTimer();
    this.timer = this.env.setTimer(() => this.onTimer(), ms);
  }

  private clearTimer(): void {
    if (this.timer !== null) {
      this.env.clearTimer(this.timer);
      this.timer = null;
    }
  }

  private close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.clearTimer();
    this.host?.destroy();
    this.host = null;
    this.chunks = [];
    this.bufBytes = 0;
    this.env.closed(this);
  }
}

function clampMss(mss: number): number {
  if (mss === 0) return 536; // RFC 9293 default when the option is absent
  return Math.max(64, Math.min(OUR_MSS, mss));
}
