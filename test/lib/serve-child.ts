// A `tsvisor serve` child process on a TCP port with a token, for tests that
// drive it from outside (a browser) and stop, kill or restart it.

import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { until } from '../daemon-helpers.js';

const CLI = fileURLToPath(new URL('../../../bin/tsvisor.js', import.meta.url));

export interface ServeChildOptions {
  /** Holds the socket, the token file and (unless stateDir is given) the state directory. */
  dir: string;
  imagesDir: string;
  token: string;
  /** 0: any free port (the first start); a restart passes the port it had. */
  port?: number;
  extraArgs?: string[];
}

export class ServeChild {
  proc: ChildProcess | null = null;
  port = 0;
  stderr = '';

  constructor(readonly opts: ServeChildOptions) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get stateDir(): string {
    return join(this.opts.dir, 'state');
  }

  /** Start (or start again, on the port it had, with the same state directory). */
  async start(): Promise<void> {
    const tokenFile = join(this.opts.dir, 'token');
    writeFileSync(tokenFile, `${this.opts.token}\n`, { mode: 0o600 });
    const port = this.port || this.opts.port || 0;
    this.stderr = '';
    const p = spawn(
      process.execPath,
      [CLI, 'serve', '--socket', join(this.opts.dir, 's.sock'), '--state-dir', this.stateDir, '--images-dir', this.opts.imagesDir,
        '--listen', `127.0.0.1:${port}`, '--token-file', tokenFile, '--cpus', '1', '--memory-budget', '1024M', ...(this.opts.extraArgs ?? [])],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.proc = p;
    p.stderr!.on('data', (b: Buffer) => (this.stderr += b.toString()));
    await until('the daemon to listen', () => /and 127\.0\.0\.1:\d+/.test(this.stderr) || p.exitCode !== null, 30_000);
    const got = Number(/and 127\.0\.0\.1:(\d+)/.exec(this.stderr)?.[1]);
    if (!(got > 0)) throw new Error(`the daemon did not start: ${this.stderr}`);
    this.port = got;
  }

  /** Stop with a signal (SIGTERM: its orderly shutdown; SIGKILL: a crash) and wait for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill(signal);
    await exited;
  }
}
