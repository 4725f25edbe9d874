// Shared by the daemon tests: a real daemon on a temporary socket (in this
// process, or as a `tsvisor serve` child), an HTTP client for its API, a
// console client over the WebSocket, and tiny guest kernels (images/spin,
// idle and smpspin).

import { request } from 'node:http';
import { copyFileSync, mkdirSync, readdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { startDaemon, type Daemon, type DaemonOptions } from '../src/host/server.js';
import { defaultWasmPath } from '../src/vm/vm-handle.js';
import { ensureDefaultGuest } from '../src/image/default-guest.js';

export const READY_LINE = 'tsvisor guest ready';

/** A RISC-V Linux Image header whose code is one instruction run from S-mode. */
function tinyImage(code: number[]): Uint8Array {
  const img = new Uint8Array(64);
  const dv = new DataView(img.buffer);
  code.forEach((insn, i) => dv.setUint32(i * 4, insn >>> 0, true));
  img.set([0x52, 0x53, 0x43, 0x05], 0x38); // "RSC\x05"
  return img;
}
/** `addi t0, t0, 1; j -4`: a guest that is CPU-bound forever (no interrupts enabled, never idle). */
export const SPIN_KERNEL = tinyImage([0x00128293, 0xffdff06f]);
/** `wfi; j -4`: a guest that is idle forever. */
export const IDLE_KERNEL = tinyImage([0x10500073, 0xffdff06f]);

/**
 * S-mode, MMU off: forever store a counter into each of 2048 pages (8 MiB)
 * from 0x8040_0000: a guest that dirties memory faster than a migration with
 * a small downtime limit can copy it (auto-converge must throttle it).
 */
export function dirtyKernel(): Uint8Array {
  const code = [0x2010031b, 0x6e85035a, 0x0f1b6f05, 0x0285800f, 0x83fa8e1a, 0x005e3023, 0x13fd9e76, 0xfe039ce3, 0x0000b7fd];
  // The Image header takes bytes 8..63: the first instruction jumps over it (j 0x40).
  const img = new Uint8Array(0x40 + code.length * 4);
  const dv = new DataView(img.buffer);
  dv.setUint32(0, 0x0400006f, true);
  code.forEach((w, i) => dv.setUint32(0x40 + i * 4, w, true));
  img.set([0x52, 0x53, 0x43, 0x05], 0x38);
  return img;
}

/**
 * S-mode, MMU off: hart 0 starts harts 1..7 with SBI HSM hart_start (a hart
 * that does not exist refuses), then every hart spins in `addi t0, t0, 1`:
 * a multi-hart guest that is CPU-bound on every hart, with no boot.
 */
export function smpSpinKernel(): Uint8Array {
  // bnez a0, spin; li s0, 1; li s1, 8; 1: mv a0, s0; lla a1, spin; li a2, 0; li a7, HSM; li a6, 0 (hart_start);
  // ecall; addi s0, s0, 1; blt s0, s1, 1b; spin: addi t0, t0, 1; j spin
  const code = [0x02051a63, 0x00100413, 0x00800493, 0x00040513, 0x00000597, 0x02458593, 0x00000613, 0x004858b7, 0x34d8889b, 0x00000813, 0x00000073, 0x00140413, 0xfc944ee3, 0x00128293, 0xffdff06f];
  const img = new Uint8Array(0x40 + code.length * 4);
  const dv = new DataView(img.buffer);
  dv.setUint32(0, 0x0400006f, true); // j 0x40, over the Image header
  code.forEach((w, i) => dv.setUint32(0x40 + i * 4, w, true));
  img.set([0x52, 0x53, 0x43, 0x05], 0x38);
  return img;
}

export interface TestDaemon extends Daemon {
  dir: string;
  images: string;
  /** What the daemon logged so far (unless the caller passed its own log). */
  logs: string[];
  cleanup(): Promise<void>;
}

/** Temp dir with images/{vmlinux,initrd,System.map,spin,idle} (the default guest copied in when asked). */
export async function makeImages(withGuest: boolean): Promise<{ dir: string; images: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-daemon-'));
  const images = join(dir, 'images');
  mkdirSync(images);
  writeFileSync(join(images, 'spin'), SPIN_KERNEL);
  writeFileSync(join(images, 'idle'), IDLE_KERNEL);
  writeFileSync(join(images, 'smpspin'), smpSpinKernel());
  if (withGuest) {
    const g = await ensureDefaultGuest({ progress: false, log: () => {} });
    copyFileSync(g.kernel, join(images, 'vmlinux'));
    copyFileSync(g.initrd, join(images, 'initrd'));
    // Next to the kernel, where the daemon looks for it: kernel panics are watched.
    if (g.systemMap) copyFileSync(g.systemMap, join(images, 'System.map'));
  }
  return { dir, images };
}

export async function startTestDaemon(
  opts: Partial<DaemonOptions> & { withGuest?: boolean } = {},
): Promise<TestDaemon> {
  const { dir, images } = await makeImages(opts.withGuest ?? false);
  const logs: string[] = [];
  const d = await startDaemon({
    socketPath: join(dir, 'd.sock'),
    stateDir: join(dir, 'state'),
    imagesDir: images,
    cpus: 1,
    memoryBudgetMiB: 4096,
    wasmPath: defaultWasmPath(),
    debugFaults: false,
    hangTimeoutMs: 30_000,
    schedulerPeriodMs: 50,
    logMaxBytes: 1024 * 1024,
    workerMaxHeapMiB: 1024,
    version: 'test',
    log: (m) => logs.push(m),
    ...opts,
  });
  return {
    ...d,
    dir,
    images,
    logs,
    async cleanup() {
      await d.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface ApiReply {
  status: number;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  text: string;
  headers: Record<string, string | string[] | undefined>;
}

/** One request to the daemon; `body` may be a raw string (sent as is). */
export function api(
  where: { socketPath: string } | { port: number; token?: string },
  method: string,
  path: string,
  body?: unknown,
): Promise<ApiReply> {
  const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  const headers: Record<string, string> = {};
  if (data !== undefined) headers['content-type'] = 'application/json';
  if ('token' in where && where.token) headers.authorization = `Bearer ${where.token}`;
  const target = 'socketPath' in where ? { socketPath: where.socketPath } : { host: '127.0.0.1', port: where.port };
  return new Promise((resolve, reject) => {
    const req = request({ ...target, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown = null;
        try {
          json = JSON.parse(text);
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode ?? 0, json, text, headers: res.headers });
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

/** How much longer than on an idle host a wait may take (see lib/budget.ts). */
export { loadFactor } from './lib/budget.js';
import { loadFactor } from './lib/budget.js';

/**
 * Poll `cond` until it holds; after `ms` (times the host's load factor) fail
 * with `what` (and `detail()`, the state at that moment).
 */
export async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 120_000, stepMs = 50, detail?: () => string): Promise<void> {
  const limit = ms * loadFactor();
  const end = Date.now() + limit;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${Math.round(limit / 1000)} s waiting for ${what}${detail ? `: ${detail()}` : ''}`);
    await delay(stepMs);
  }
}

/** A console client over the WebSocket: collects output, sends input. */
export class ConsoleClient {
  output = '';
  closed = false;
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d: Buffer) => {
      this.output += d.toString('latin1');
    });
    ws.on('close', () => {
      this.closed = true;
    });
  }

  static async open(socketPath: string, name: string): Promise<ConsoleClient> {
    const ws = new WebSocket(`ws+unix://${socketPath}:/v1/vms/${name}/console`);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_q, res) => reject(new Error(`console upgrade refused: HTTP ${res.statusCode}`)));
    });
    return new ConsoleClient(ws);
  }

  send(text: string): void {
    this.ws.send(Buffer.from(text, 'latin1'));
  }

  async waitFor(re: RegExp | string, ms = 180_000, from = 0): Promise<void> {
    const hit = () => (typeof re === 'string' ? this.output.indexOf(re, from) >= 0 : re.test(this.output.slice(from)));
    await until(`console output ${String(re)}`, () => hit() || this.closed, ms);
    if (!hit()) throw new Error(`console closed before ${String(re)}; output ends: ${this.output.slice(-300)}`);
  }

  close(): void {
    this.ws.terminate();
  }
}

/** Number of open file descriptors of this process. */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}
