// End to end: the real CLI (`node bin/tsvisor.js run`) boots the real default
// guest (Debian kernel + busybox initramfs from `tsvisor image build`), a
// "user" types into the console through a pipe, and the test checks what
// comes back and how the process exits.
//
// Each boot takes about a minute of host time under the interpreter on a
// 2-core machine, so the boots run two at a time and every wait is generous.
// A child that outlives its test is killed (SIGKILL), also when the test
// process itself exits.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { budget } from './lib/budget.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin/tsvisor.js');
const OPENSBI = '/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin';

const READY_LINE = 'tsvisor guest ready';
const COMMANDS = 'uname -m; echo $((6*7))\n';
/** The answers to COMMANDS, as the console shows them. */
const ANSWERS = /\r?\nriscv64\r?\n42\r?\n/;

// Until the shell prompt: generous, as a boot on a shared 2-core host under the
// whole suite's load has taken more than 6 minutes.
const BOOT_TIMEOUT_MS = 12 * 60 * 1000;
const ANSWER_TIMEOUT_MS = 60 * 1000; // from typing the commands to their output
const EXIT_TIMEOUT_MS = 60 * 1000; // from `poweroff -f` to the process's exit
const TEST_TIMEOUT_MS = BOOT_TIMEOUT_MS + ANSWER_TIMEOUT_MS + EXIT_TIMEOUT_MS + 60 * 1000;

// ---- child processes ----

const live = new Set<ChildProcess>();
function killAll(): void {
  for (const c of live) c.kill('SIGKILL');
  live.clear();
}
process.on('exit', killAll);

/** A running `tsvisor` process with its console output collected. */
class Cli {
  readonly child: ChildProcess;
  private out: Buffer[] = [];
  private err: Buffer[] = [];
  private waiters: (() => void)[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: string[]) {
    this.child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    live.add(this.child);
    this.child.stdout!.on('data', (b: Buffer) => {
      this.out.push(b);
      this.wake();
    });
    this.child.stderr!.on('data', (b: Buffer) => {
      this.err.push(b);
      this.wake();
    });
    // The guest may power off while we still write; a closed pipe is not an error here.
    this.child.stdin!.on('error', () => {});
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        live.delete(this.child);
        resolve({ code, signal });
        this.wake();
      });
      this.child.on('error', () => {
        live.delete(this.child);
        resolve({ code: null, signal: null });
        this.wake();
      });
    });
  }

  /** Console output so far (latin1: one char per byte, so offsets are byte offsets). */
  get stdout(): string {
    return Buffer.concat(this.out).toString('latin1');
  }

  get stderr(): string {
    return Buffer.concat(this.err).toString('latin1');
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  type(s: string): void {
    this.child.stdin!.write(s);
  }

  kill(): void {
    if (this.running) this.child.kill('SIGKILL');
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Wait until `pred` holds for the output (returns its value), the process ends, or the time is up. */
  async waitFor<T>(what: string, pred: (out: string) => T | null, ms: number): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
      const v = pred(this.stdout);
      if (v !== null) return v;
      if (!this.running) throw new Error(`tsvisor exited (status ${this.child.exitCode}, signal ${this.child.signalCode}) while waiting for ${what}\n${this.tail()}`);
      const left = end - Date.now();
      if (left <= 0) throw new Error(`timed out after ${Math.round(ms / 1000)} s waiting for ${what}\n${this.tail()}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 1000));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async waitExit(ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`tsvisor did not exit within ${Math.round(ms / 1000)} s\n${this.tail()}`)), ms);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The end of the console and all of stderr, for failure messages. */
  tail(n = 3000): string {
    const out = this.stdout;
    return `--- console (last ${Math.min(n, out.length)} of ${out.length} bytes) ---\n${out.slice(-n)}\n--- stderr ---\n${this.stderr.slice(-2000)}`;
  }
}

// ---- one interactive session ----

interface Session {
  /** Console output from the start up to and including the answers to COMMANDS. */
  transcript: string;
  /** All console output. */
  output: string;
  stderr: string;
  status: number | null;
}

/** Offset just past the shell prompt that follows the ready line, or null. */
function promptEnd(out: string): number | null {
  const ready = out.indexOf(READY_LINE);
  if (ready < 0) return null;
  // The busybox prompt is "~ # " (PS1='\w \$ '), possibly followed by a cursor-position query.
  const m = /\n[^\n]*# /.exec(out.slice(ready));
  return m ? ready + m.index + m[0].length : null;
}

/**
 * Boot with `args`, wait for the prompt, type COMMANDS, read the answers,
 * type `poweroff -f` and wait for the exit. Throws with the console's tail on
 * any timeout or early exit. The child never outlives this call.
 */
async function interactiveBoot(args: string[]): Promise<Session> {
  const cli = new Cli(['run', '--deterministic', ...args]);
  try {
    const prompt = await cli.waitFor('the shell prompt', promptEnd, BOOT_TIMEOUT_MS);
    cli.type(COMMANDS);
    const answered = await cli.waitFor(
      'the answers to the typed commands (riscv64, 42)',
      (out) => {
        const m = ANSWERS.exec(out.slice(prompt));
        return m ? prompt + m.index + m[0].length : null;
      },
      ANSWER_TIMEOUT_MS,
    );
    const transcript = cli.stdout.slice(0, answered);
    cli.type('poweroff -f\n');
    const { code, signal } = await cli.waitExit(EXIT_TIMEOUT_MS);
    assert.equal(signal, null, `tsvisor was killed by ${signal}\n${cli.tail()}`);
    return { transcript, output: cli.stdout, stderr: cli.stderr, status: code };
  } finally {
    cli.kill();
  }
}

function once<T>(f: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= f());
}

/** The first deterministic boot of the default guest: shared by the boot test and the determinism test. */
const defaultBoot = once(() => interactiveBoot([]));

// ---- a tiny firmware that reports failure through the test device ----

/** RV64 machine code: store (3 << 16) | 0x3333 to the sifive test device at 0x100000, then spin. */
function failingFirmware(code: number): Buffer {
  const lui = (rd: number, imm20: number) => ((imm20 << 12) | (rd << 7) | 0x37) >>> 0;
  const addi = (rd: number, rs1: number, imm: number) => (((imm & 0xfff) << 20) | (rs1 << 15) | (rd << 7) | 0x13) >>> 0;
  const or = (rd: number, rs1: number, rs2: number) => ((rs2 << 20) | (rs1 << 15) | (6 << 12) | (rd << 7) | 0x33) >>> 0;
  const sw = (rs2: number, rs1: number) => ((rs2 << 20) | (rs1 << 15) | (2 << 12) | 0x23) >>> 0; // offset 0
  const T0 = 5, T1 = 6, T2 = 7;
  const words = [
    lui(T0, 0x100), // t0 = 0x100000
    lui(T1, 0x3), // t1 = 0x3000
    addi(T1, T1, 0x333), // t1 = 0x3333
    lui(T2, code << 4), // t2 = code << 16
    or(T1, T1, T2),
    sw(T1, T0),
    0x0000006f, // j .
  ];
  const b = Buffer.alloc(words.length * 4);
  words.forEach((w, i) => b.writeUInt32LE(w, i * 4));
  return b;
}

// ---- the tests ----

describe('boot the default guest through the CLI', { concurrency: 2 }, () => {
  before(() => {
    // Build (or find cached) the default guest once, so parallel boots do not race to build it.
    const r = spawnSync(process.execPath, [CLI, 'image', 'build'], { cwd: ROOT, encoding: 'utf8', timeout: 20 * 60 * 1000 });
    if (r.status !== 0) {
      throw new Error(`'tsvisor image build' failed (status ${r.status}${r.error ? `, ${r.error.message}` : ''}):\n${r.stdout}\n${r.stderr}`);
    }
  });

  after(killAll);

  test('deterministic boot: shell answers, poweroff exits 0', { timeout: budget(TEST_TIMEOUT_MS) }, async () => {
    const s = await defaultBoot();
    assert.match(s.transcript, /Linux version \S+/);
    assert.ok(s.transcript.includes(READY_LINE));
    assert.equal(s.status, 0, `exit status ${s.status} after poweroff -f\n${s.output.slice(-2000)}\n--- stderr ---\n${s.stderr}`);
  });

  test('realtime boot: the guest sees its clock move between two reads (the jitter entropy source starts)', { timeout: budget(TEST_TIMEOUT_MS) }, async () => {
    // The time CSR used to hold the slice's start time for up to 2 million instructions:
    // Linux's jitter entropy source then gave up ("timer too coarse") after hashing for
    // about a third of the boot. Under QEMU it starts; so must it here.
    const cli = new Cli(['run', '--stats']);
    try {
      await cli.waitFor('the shell prompt', promptEnd, BOOT_TIMEOUT_MS);
      assert.doesNotMatch(cli.stdout, /jitterentropy: Initialization failed/);
      assert.match(cli.stdout, /Linux version \S+/);
      cli.type('poweroff -f\n');
      const { code, signal } = await cli.waitExit(EXIT_TIMEOUT_MS);
      assert.equal(signal, null, `tsvisor was killed by ${signal}\n${cli.tail()}`);
      assert.equal(code, 0, cli.tail());
      // --stats names where the boot spent its instructions, from the kernel's System.map.
      const hot = /guest hot spots +(.*)/.exec(cli.stderr);
      assert.ok(hot, `no hot spots line in --stats:\n${cli.stderr.slice(-3000)}`);
      assert.doesNotMatch(hot[1], /no System\.map/);
      const first = /^([A-Za-z_][\w.]*) (\d+\.\d)%/.exec(hot[1]);
      assert.ok(first && first[1] !== 'user' && first[1] !== 'unknown', `the boot's heaviest function is not a kernel symbol: ${hot[1]}`);
    } finally {
      cli.kill();
    }
  });

  test('boot through OpenSBI (--bios fw_dynamic.bin)', { timeout: budget(TEST_TIMEOUT_MS) }, async () => {
    assert.ok(existsSync(OPENSBI), `${OPENSBI} is missing: install Debian's opensbi package (test/REQUIREMENTS.md)`);
    const s = await interactiveBoot(['--bios', OPENSBI]);
    assert.match(s.transcript, /OpenSBI v\d/, 'no OpenSBI banner on the console');
    assert.match(s.transcript, /Linux version \S+/);
    assert.ok(s.transcript.indexOf('OpenSBI') < s.transcript.indexOf('Linux version'), 'OpenSBI banner should precede the kernel');
    assert.equal(s.status, 0, `exit status ${s.status} after poweroff -f\n${s.output.slice(-2000)}\n--- stderr ---\n${s.stderr}`);
  });

  // The second boot runs without the translator: deterministic runs must agree byte for
  // byte whichever way the instructions are executed (a differential test of the JIT).
  test('deterministic mode: two boots print the same bytes, translator on and off', { timeout: budget(2 * TEST_TIMEOUT_MS) }, async () => {
    const [a, b] = await Promise.all([defaultBoot(), interactiveBoot(['--jit', 'off'])]);
    for (const s of [a, b]) {
      assert.ok(s.transcript.includes('Linux version'), 'transcript lacks "Linux version"');
      assert.ok(s.transcript.includes('riscv64'), 'transcript lacks "riscv64"');
      assert.ok(s.transcript.length > 4000, `transcript suspiciously short (${s.transcript.length} bytes)`);
    }
    if (a.transcript !== b.transcript) {
      let i = 0;
      while (i < a.transcript.length && a.transcript[i] === b.transcript[i]) i++;
      const lineStart = a.transcript.lastIndexOf('\n', i) + 1;
      const show = (t: string) => JSON.stringify(t.slice(lineStart, lineStart + 200));
      assert.fail(`transcripts differ at byte ${i} (lengths ${a.transcript.length} and ${b.transcript.length}):\n  first:  ${show(a.transcript)}\n  second: ${show(b.transcript)}`);
    }
    assert.equal(b.status, 0);
  });

  test('guest-reported failure becomes the exit status', { timeout: budget(2 * 60 * 1000) }, async () => {
    // Firmware of our own that writes "fail, code 3" to the test device before the kernel runs.
    const dir = mkdtempSync(join(tmpdir(), 'tsvisor-boot-test-'));
    try {
      const fw = join(dir, 'fail3.bin');
      writeFileSync(fw, failingFirmware(3));
      const cli = new Cli(['run', '--deterministic', '--mem', '64M', '--bios', fw]);
      try {
        const { code, signal } = await cli.waitExit(90 * 1000);
        assert.equal(signal, null);
        assert.equal(code, 3, `exit status ${code}, expected 3\n${cli.tail()}`);
        assert.match(cli.stderr, /guest reported failure \(code 3\)/);
      } finally {
        cli.kill();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
