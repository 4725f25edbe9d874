// Two `tsvisor serve` daemons on one host, as two hosts would run them: each
// with its own state directory, Unix socket, and a TCP listener with its own
// token; one images directory shared by both (shared storage, as a migration
// between hosts with the same paths). Used by the migration benchmark.

import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { track } from './proc.js';
import { TSVISOR_BIN } from './guest-build.js';
import { freePort } from './qemu-migrate.js';

export interface BenchDaemon {
  name: string;
  socket: string;
  url: string;
  tokenFile: string;
  stateDir: string;
  child: ChildProcess;
  stderr: () => string;
}

export function api(d: BenchDaemon, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: d.socket, method, path, headers: data ? { 'content-type': 'application/json' } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json: unknown = null;
        try {
          json = JSON.parse(text);
        } catch {
          json = text;
        }
        resolve({ status: res.statusCode ?? 0, json });
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

/** Copies the guest's kernel and initrd into `images` as vmlinux and initrd. */
export function makeImages(images: string, kernel: string, initrd: string): void {
  mkdirSync(images, { recursive: true });
  copyFileSync(kernel, join(images, 'vmlinux'));
  copyFileSync(initrd, join(images, 'initrd'));
}

export async function startBenchDaemon(work: string, name: string, images: string, timeoutMs: number, memoryBudget = '2G'): Promise<BenchDaemon> {
  const socket = join(work, `${name}.sock`);
  const stateDir = join(work, `${name}-state`);
  const tokenFile = join(work, `${name}.token`);
  writeFileSync(tokenFile, randomBytes(24).toString('hex'), { mode: 0o600 });
  const port = await freePort();
  const child = track(spawn(process.execPath, [
    TSVISOR_BIN, 'serve', '--socket', socket, '--state-dir', stateDir, '--images-dir', images,
    '--listen', `127.0.0.1:${port}`, '--token-file', tokenFile, '--cpus', '1', '--memory-budget', memoryBudget,
  ], { stdio: ['ignore', 'ignore', 'pipe'] }));
  let err = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (c: string) => (err = (err + c).slice(-4000)));
  const d: BenchDaemon = { name, socket, url: `http://127.0.0.1:${port}`, tokenFile, stateDir, child, stderr: () => err };
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`daemon ${name} exited: ${err.trim().split('\n').pop()}`);
    if (existsSync(socket)) {
      const r = await api(d, 'GET', '/v1/vms').catch(() => null);
      if (r?.status === 200) return d;
    }
    if (Date.now() > end) throw new Error(`daemon ${name} did not answer within ${timeoutMs / 1000} s`);
    await delay(100);
  }
}

export async function stopBenchDaemon(d: BenchDaemon): Promise<void> {
  if (d.child.exitCode !== null || d.child.signalCode !== null) return;
  const closed = new Promise((r) => d.child.once('close', r));
  d.child.kill('SIGTERM');
  const t = setTimeout(() => d.child.kill('SIGKILL'), 30_000);
  await closed;
  clearTimeout(t);
}

/** A VM's console over the daemon's WebSocket: everything it printed since connecting, and typing. */
export class DaemonConsole {
  private text = '';
  private waiter: (() => void) | null = null;
  private closed = false;

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      this.text += data.toString('latin1');
      this.noteArrival(data.toString('latin1'));
      if (this.text.length > 4 << 20) this.text = this.text.slice(-(1 << 20));
      this.waiter?.();
    });
    ws.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
  }

  static open(d: BenchDaemon, vm: string): Promise<DaemonConsole> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws+unix://${d.socket}:/v1/vms/${vm}/console`);
      ws.once('open', () => resolve(new DaemonConsole(ws)));
      ws.once('error', reject);
    });
  }

  private seen = '';
  private marks: { re: RegExp; at: number | null }[] = [];

  private noteArrival(chunk: string): void {
    if (this.marks.length === 0) return;
    this.seen = (this.seen + chunk).slice(-4096);
    for (const m of this.marks) if (m.at === null && m.re.test(this.seen)) m.at = performance.now();
  }

  /** performance.now() when output matching `re` first arrives from now on (null until then); consumes nothing. */
  mark(re: RegExp): { at: number | null } {
    const m = { re, at: null as number | null };
    this.marks.push(m);
    return m;
  }

  type(line: string): void {
    this.ws.send(Buffer.from(`${line}\n`, 'latin1'));
  }

  /** Waits until `re` matches what arrived since the last match; consumes through the match. */
  waitFor(re: RegExp, timeoutMs: number, what: string): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new Error(`${what}: nothing within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      const check = () => {
        const m = re.exec(this.text.replace(/\r/g, ''));
        if (m) {
          clearTimeout(timer);
          this.waiter = null;
          this.text = this.text.replace(/\r/g, '').slice(m.index + m[0].length);
          resolve(m);
        } else if (this.closed) {
          clearTimeout(timer);
          this.waiter = null;
          reject(new Error(`${what}: the console closed`));
        }
      };
      this.waiter = check;
      check();
    });
  }

  close(): void {
    this.ws.close();
  }
}
