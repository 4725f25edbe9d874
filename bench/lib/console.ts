// A guest driven through its serial console: start an emulator, wait for the
// default guest's shell prompt, type commands, wait for their output, power
// off. Used by bench/disk.ts (bench/cpu.ts has its own state machine).

import { spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { track } from './proc.js';
import { REPO_ROOT } from './guest-build.js';

/** What the default guest's /init prints just before it starts the shell. */
export const READY_MARKER = 'tsvisor guest ready';
const POWEROFF_TIMEOUT_MS = 30_000;

/** Console text with terminal escape sequences and carriage returns removed. */
function plain(s: string): string {
  return s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');
}

/** True when the text ends in a shell prompt ("... # " at the start of a line). */
function endsAtPrompt(s: string): boolean {
  return /(^|\n)[^\n]*# $/.test(plain(s));
}

export class ConsoleSession {
  readonly child: ChildProcess;
  readonly started = performance.now();
  /** Console output not yet consumed by a wait. */
  private text = '';
  private stderrTail = '';
  /** Recent stderr, for reports the emulator writes there (tsvisor --stats). */
  private stderrLog = '';
  private stderrAt = 0;
  private exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private waiter: (() => void) | null = null;
  private readonly closed: Promise<void>;

  constructor(command: string, args: string[], echo = process.env.TSVISOR_BENCH_ECHO === '1') {
    this.child = track(spawn(command, args, { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] }));
    this.child.stdout!.setEncoding('latin1');
    this.child.stdout!.on('data', (chunk: string) => {
      if (echo) process.stderr.write(chunk);
      this.text += chunk;
      if (this.text.length > 4 << 20) this.text = this.text.slice(-(1 << 20));
      this.waiter?.();
    });
    this.child.stderr!.setEncoding('latin1');
    this.child.stderr!.on('data', (chunk: string) => {
      if (echo) process.stderr.write(chunk);
      this.stderrTail = (this.stderrTail + chunk).slice(-600);
      this.stderrLog = (this.stderrLog + chunk).slice(-(1 << 16));
      this.stderrAt = performance.now();
    });
    this.child.stdin!.on('error', () => {});
    this.closed = new Promise((resolve) => {
      this.child.on('error', (e) => {
        this.stderrTail += `\ncannot start ${command}: ${e.message}`;
      });
      this.child.on('close', (code, signal) => {
        this.exited = { code, signal };
        this.waiter?.();
        resolve();
      });
    });
  }

  /**
   * Ask a `tsvisor run --stats` for its report now (SIGUSR1) and return the
   * report's text, once stderr has been quiet for a moment after it.
   */
  async tsvisorStats(timeoutMs = 20_000): Promise<string> {
    this.stderrLog = '';
    this.child.kill('SIGUSR1');
    const start = performance.now();
    for (;;) {
      await new Promise((r) => setTimeout(r, 100));
      const at = this.stderrLog.indexOf('tsvisor stats');
      if (at >= 0 && performance.now() - this.stderrAt > 300) return this.stderrLog.slice(at);
      if (performance.now() - start > timeoutMs) throw new Error('no statistics report from tsvisor (was it started with --stats?)');
      if (this.exited) throw new Error('the emulator exited before its statistics report');
    }
  }

  /** The last line the emulator wrote to stderr (for error messages). */
  lastError(): string {
    return this.stderrTail.trim().split('\n').pop() ?? '';
  }

  /**
   * Waits until `test` finds what it wants in the unconsumed console text;
   * returns its result and drops the text up to the returned `end` offset.
   * Rejects on timeout or when the emulator exits first.
   */
  private waitUntil<T>(test: (text: string) => { value: T; end: number } | null, timeoutMs: number, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new Error(`${what}: nothing within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      const check = () => {
        const r = test(this.text);
        if (r) {
          clearTimeout(timer);
          this.waiter = null;
          this.text = this.text.slice(r.end);
          resolve(r.value);
        } else if (this.exited) {
          clearTimeout(timer);
          this.waiter = null;
          const why = this.lastError();
          reject(new Error(`${what}: the emulator exited (${this.exited.signal ?? `status ${this.exited.code}`})${why ? `: ${why}` : ''}`));
        }
      };
      this.waiter = check;
      check();
    });
  }

  /** Waits for the ready marker and the first prompt; returns seconds since start. */
  async waitForShell(timeoutMs: number): Promise<number> {
    await this.waitUntil(
      (t) => {
        const at = t.indexOf(READY_MARKER);
        if (at < 0) return null;
        const p = t.indexOf('# ', at + READY_MARKER.length);
        return p < 0 ? null : { value: true, end: t.length };
      },
      timeoutMs,
      'waiting for the shell prompt',
    );
    return (performance.now() - this.started) / 1000;
  }

  /** Waits until `re` matches the console text; returns seconds since start. */
  async waitFor(re: RegExp, timeoutMs: number, what: string): Promise<number> {
    await this.waitUntil(
      (t) => {
        const m = re.exec(plain(t));
        return m ? { value: true, end: t.length } : null;
      },
      timeoutMs,
      what,
    );
    return (performance.now() - this.started) / 1000;
  }

  /** Types `line` and returns everything it printed up to the next prompt (escapes removed). */
  run(line: string, timeoutMs: number): Promise<string> {
    this.text = '';
    this.child.stdin!.write(`${line}\n`);
    return this.waitUntil(
      (t) => {
        // The echo of the command comes first; the output ends at the next prompt.
        const p = plain(t);
        const nl = p.indexOf('\n');
        if (nl < 0 || !endsAtPrompt(p.slice(nl + 1)) ) return null;
        const out = p.slice(nl + 1);
        return { value: out.slice(0, out.lastIndexOf('\n') + 1), end: t.length };
      },
      timeoutMs,
      `running "${line}"`,
    );
  }

  /** Types `poweroff -f` and waits for the exit; kills the emulator if it takes longer than 30 s. */
  async poweroff(): Promise<void> {
    if (this.exited) return;
    this.child.stdin!.write('poweroff -f\n');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), POWEROFF_TIMEOUT_MS);
    await this.closed;
    clearTimeout(timer);
  }

  /** Kills the emulator at once. */
  async kill(): Promise<void> {
    if (!this.exited) this.child.kill('SIGKILL');
    await this.closed;
  }
}
