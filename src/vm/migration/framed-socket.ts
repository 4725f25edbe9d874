// Frames over a byte stream (a TCP socket taken over from an HTTP upgrade):
// send() waits while the socket's buffer is full, next() returns the next
// checked frame or rejects when the stream breaks. Reading pauses while
// frames wait unread, so a slow consumer holds the sender back through TCP.

import type { Duplex } from 'node:stream';
import { FrameDecoder, type Frame } from './stream.js';

const MAX_QUEUED = 8;
/** After close(), how long the peer has to end its side before the socket is destroyed anyway. */
const CLOSE_GRACE_MS = 1000;

export class FramedSocket {
  private readonly decoder = new FrameDecoder();
  private readonly queue: Frame[] = [];
  private waiter: { resolve: (f: Frame) => void; reject: (e: Error) => void } | null = null;
  private ended: Error | null = null;
  /** Bytes written so far. */
  bytesSent = 0;

  /** close() was called: whatever still arrives is dropped. */
  private closing = false;

  constructor(readonly socket: Duplex, head?: Uint8Array, private readonly closeGraceMs = CLOSE_GRACE_MS) {
    socket.on('data', (c: Buffer) => this.onData(c));
    socket.on('error', (e: Error) => this.fail(e));
    socket.on('close', () => this.fail(new Error('the connection closed')));
    if (head && head.length) this.onData(Buffer.from(head));
  }

  private onData(c: Buffer): void {
    if (this.ended || this.closing) return;
    let frames: Frame[];
    try {
      // A socket's chunks are fresh buffers it never reuses: the decoder may keep them without a copy.
      frames = this.decoder.push(new Uint8Array(c.buffer, c.byteOffset, c.byteLength), true);
    } catch (e) {
      this.fail(e as Error);
      this.socket.destroy();
      return;
    }
    for (const f of frames) {
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = null;
        w.resolve(f);
      } else this.queue.push(f);
    }
    if (this.queue.length >= MAX_QUEUED) this.socket.pause();
  }

  private fail(e: Error): void {
    if (this.ended) return;
    this.ended = e;
    const w = this.waiter;
    this.waiter = null;
    w?.reject(e);
  }

  get broken(): Error | null {
    return this.ended;
  }

  /** The next frame; rejects when the stream ends or is corrupt. */
  next(timeoutMs?: number): Promise<Frame> {
    const f = this.queue.shift();
    if (this.queue.length < MAX_QUEUED) this.socket.resume();
    if (f) return Promise.resolve(f);
    if (this.ended) return Promise.reject(this.ended);
    return new Promise<Frame>((resolve, reject) => {
      let t: NodeJS.Timeout | undefined;
      if (timeoutMs !== undefined) {
        t = setTimeout(() => {
          this.waiter = null;
          reject(new Error(`no answer within ${Math.round(timeoutMs / 1000)} s`));
        }, timeoutMs);
      }
      this.waiter = {
        resolve: (x) => {
          clearTimeout(t);
          resolve(x);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      };
    });
  }

  /** Write a frame; resolves once the socket can take more. */
  async send(frame: Uint8Array): Promise<void> {
    if (this.ended) throw this.ended;
    this.bytesSent += frame.length;
    if (this.socket.write(frame)) return;
    await new Promise<void>((resolve, reject) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        if (this.ended) reject(this.ended);
        else resolve();
      };
      this.socket.once('drain', done);
      this.socket.once('close', done);
    });
  }

  /**
   * End this side and let the socket close once the peer ends too (at once
   * when it already has). Reading resumes: a socket paused with frames unread
   * would never see the peer's end and would linger until the grace timer.
   * Resolves when the socket has closed.
   */
  close(): Promise<void> {
    this.closing = true;
    const closed = new Promise<void>((resolve) => {
      if (this.socket.destroyed) resolve();
      else this.socket.once('close', () => resolve());
    });
    const t = setTimeout(() => this.socket.destroy(), this.closeGraceMs);
    t.unref();
    void closed.then(() => clearTimeout(t));
    this.socket.resume();
    this.socket.end();
    return closed;
  }

  destroy(): void {
    this.fail(new Error('the connection was closed here'));
    this.socket.destroy();
  }
}
