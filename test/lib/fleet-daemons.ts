// Daemons as fleet members for the tests: each a real `tsvisor serve --fleet`
// child process with its own state directory, socket and TCP port, all
// sharing one images directory (the hosts' shared storage) and one token.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { api, until, type ApiReply } from '../daemon-helpers.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(ROOT, 'bin/tsvisor.js');
export const FLEET_TOKEN = 'fleet-token-0123456789abcdef';

export interface MemberOptions {
  name: string;
  dir: string;
  images: string;
  endpoints: string[];
  budgetMiB: number;
  leaseSeconds: number;
  labels?: string[];
  /** --cpus: host cores the daemon shares among its VMs (default 1). */
  cpus?: number;
}

export class MemberDaemon {
  child: ChildProcess | null = null;
  port = 0;
  stderr = '';
  readonly sock: string;
  readonly stateDir: string;
  exited: Promise<number | null> = Promise.resolve(null);

  constructor(readonly opts: MemberOptions) {
    this.stateDir = join(opts.dir, opts.name);
    this.sock = join(opts.dir, `${opts.name}.sock`);
  }

  /** Start `tsvisor serve --fleet` and wait until it listens (it has joined by then). */
  async start(endpoints = this.opts.endpoints): Promise<void> {
    mkdirSync(this.stateDir, { recursive: true });
    const tokenFile = join(this.opts.dir, 'token');
    writeFileSync(tokenFile, FLEET_TOKEN, { mode: 0o600 });
    const args = [
      CLI, 'serve', '--state-dir', this.stateDir, '--socket', this.sock, '--images-dir', this.opts.images,
      '--listen', `127.0.0.1:${this.port}`, '--token-file', tokenFile, '--memory-budget', `${this.opts.budgetMiB}M`, '--cpus', String(this.opts.cpus ?? 1),
      '--fleet', endpoints.join(','), '--host-name', this.opts.name, '--lease', String(this.opts.leaseSeconds),
      ...(this.opts.labels ?? []).flatMap((l) => ['--label', l]),
    ];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    this.stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-50_000);
    });
    this.exited = new Promise((r) => child.once('exit', (code) => r(code)));
    await until(`${this.opts.name} to listen`, () => /listening on .* and [\d.]+:(\d+)/.test(this.stderr) || child.exitCode !== null, 60_000);
    const m = /listening on .* and [\d.]+:(\d+)/.exec(this.stderr);
    if (!m) throw new Error(`${this.opts.name} did not start: ${this.stderr.slice(-2000)}`);
    this.port = Number(m[1]);
  }

  api(method: string, path: string, body?: unknown): Promise<ApiReply> {
    return api({ socketPath: this.sock }, method, path, body);
  }

  /** The same call over TCP with the fleet token (as another member would). */
  tcp(method: string, path: string, body?: unknown): Promise<ApiReply> {
    return api({ port: this.port, token: FLEET_TOKEN }, method, path, body);
  }

  get alive(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (!this.alive) return;
    this.child!.kill(signal);
    await this.exited;
  }
}

/** Ask `d` for the fleet's live hosts, by name. */
export async function liveHosts(d: MemberDaemon): Promise<string[]> {
  const r = await d.api('GET', '/v1/fleet/hosts');
  if (r.status !== 200) return [];
  return (r.json as { name: string; alive: boolean }[]).filter((h) => h.alive).map((h) => h.name).sort();
}

export async function waitHosts(d: MemberDaemon, want: string[], ms = 60_000): Promise<void> {
  let last: string[] = [];
  await until(`hosts ${want.join(',')}`, async () => {
    last = await liveHosts(d);
    return JSON.stringify(last) === JSON.stringify([...want].sort());
  }, ms, 100, () => `saw ${last.join(',')}`);
}
