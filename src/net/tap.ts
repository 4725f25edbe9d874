// TAP backend (Linux): the NIC's frames go to an existing TAP device, for
// bridged networking. Node cannot issue the TUNSETIFF ioctl, so a tiny helper
// (native/tap-relay.c, built into build/tap-relay) opens the device and relays
// frames over a pipe, each with a 2-byte length.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MAX_ETH_FRAME, MIN_ETH_FRAME, countFromGuest, emptyCounters, type NetBackend, type NetCounters } from './backend.js';
import { FrameReader, encodeFrame } from './frame-stream.js';

/** Frames from the TAP device kept until the VM's NIC starts; later ones are dropped. */
const EARLY_FRAMES = 64;

export function tapRelayPath(): string {
  // This file runs as dist/src/net/tap.js; the repo root is three levels up.
  return fileURLToPath(new URL('../../../build/tap-relay', import.meta.url));
}

export class TapBackend implements NetBackend {
  readonly description: string;
  private toGuest: ((frame: Uint8Array) => void) | null = null;
  private readonly c = emptyCounters();
  private readonly reader = new FrameReader((f) => this.onFrame(f));
  private early: Uint8Array[] = [];

  private constructor(private readonly child: ChildProcess, readonly ifname: string) {
    this.description = `tap ${ifname}`;
    child.stdout!.on('data', (b: Buffer) => this.onData(b));
    // A write to a relay that died is reported by 'exit'; keep EPIPE from surfacing as an exception.
    child.stdin!.on('error', () => {});
  }

  /** Attach to the TAP device `ifname`; rejects with a message naming the problem. */
  static open(ifname: string, relay = tapRelayPath()): Promise<TapBackend> {
    if (!/^[A-Za-z0-9_.:-]{1,15}$/.test(ifname)) return Promise.reject(new Error(`--net tap: bad interface name "${ifname}"`));
    if (!existsSync(relay)) {
      return Promise.reject(new Error(`--net tap needs the helper ${relay}; install gcc and run "npm run build"`));
    }
    return new Promise((resolve, reject) => {
      const child = spawn(relay, [ifname], { stdio: ['pipe', 'pipe', 'pipe'] });
      let err = '';
      let head = Buffer.alloc(0);
      child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
      const onHead = (b: Buffer): void => {
        head = Buffer.concat([head, b]);
        if (head.length < 4) return;
        child.stdout!.off('data', onHead);
        child.off('exit', onExit);
        if (head.subarray(0, 4).toString('latin1') !== 'TAP1') {
          child.kill();
          reject(new Error(`--net tap: the helper for ${ifname} answered unexpectedly`));
          return;
        }
        const t = new TapBackend(child, ifname);
        if (head.length > 4) t.onData(head.subarray(4));
        resolve(t);
      };
      const onExit = (): void => {
        reject(new Error(`--net tap: ${err.trim() || `cannot attach to ${ifname}`}`));
      };
      child.stdout!.on('data', onHead);
      child.on('exit', onExit);
      child.on('error', (e) => reject(new Error(`--net tap: cannot run ${relay}: ${e.message}`)));
    });
  }

  private onData(b: Buffer): void {
    this.reader.push(b);
  }

  private onFrame(frame: Uint8Array): void {
    const len = frame.length;
    if (len < MIN_ETH_FRAME || len > MAX_ETH_FRAME) return;
    if (!this.toGuest) {
      // Before the VM starts (its image may still be building) keep only a few frames.
      if (this.early.length < EARLY_FRAMES) this.early.push(Uint8Array.from(frame));
      return;
    }
    this.c.txToGuestFrames++;
    this.c.txToGuestBytes += len;
    this.toGuest(frame);
  }

  start(toGuest: (frame: Uint8Array) => void): void {
    this.toGuest = toGuest;
    for (const f of this.early.splice(0)) toGuest(f);
  }

  fromGuest(frame: Uint8Array): void {
    if (!countFromGuest(this.c, frame)) return;
    this.child.stdin!.write(encodeFrame(frame));
  }

  counters(): NetCounters {
    return { ...this.c };
  }

  async close(): Promise<void> {
    this.toGuest = null;
    if (this.child.exitCode !== null) return;
    const gone = new Promise((r) => this.child.once('exit', r));
    this.child.stdin!.end();
    const t = setTimeout(() => this.child.kill('SIGKILL'), 1000);
    await gone;
    clearTimeout(t);
  }
}
