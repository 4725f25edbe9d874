// `tsvisor run` must reject bad input with one clear line before any VM starts.
// These run the real CLI (bin/tsvisor.js) as a child process and need no CPU core.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// dist/test/cli-args.test.js -> repo root
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const bin = join(repoRoot, 'bin', 'tsvisor.js');

let dir = '';
let image = ''; // looks like a RISC-V Linux Image
let elfRiscv = ''; // ELF64, e_machine RISC-V
let elfX86 = ''; // ELF64, e_machine x86-64
let text = '';
let empty = '';
let subdir = '';

function imageHeader(): Uint8Array {
  const b = new Uint8Array(4096);
  b.set(new TextEncoder().encode('RISCV\0\0\0'), 0x30);
  b.set(new TextEncoder().encode('RSC\x05'), 0x38);
  return b;
}

function elfHeader(machine: number, elfClass = 2): Uint8Array {
  const b = new Uint8Array(256);
  b.set([0x7f, 0x45, 0x4c, 0x46, elfClass, 1, 1], 0);
  b[0x10] = 2; // ET_EXEC
  b[0x12] = machine & 0xff;
  b[0x13] = machine >> 8;
  return b;
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'tsvisor-cli-'));
  image = join(dir, 'Image');
  writeFileSync(image, imageHeader());
  elfRiscv = join(dir, 'vmlinux-riscv');
  writeFileSync(elfRiscv, elfHeader(243));
  elfX86 = join(dir, 'vmlinux-x86');
  writeFileSync(elfX86, elfHeader(62));
  text = join(dir, 'notes.txt');
  writeFileSync(text, 'this is not a kernel, just some text that is long enough to have offset 0x38\n'.repeat(4));
  empty = join(dir, 'empty');
  writeFileSync(empty, '');
  subdir = join(dir, 'a-directory');
  mkdirSync(subdir);
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

function tsvisor(...args: string[]): Result {
  const env = { ...process.env };
  delete env.TSVISOR_DEBUG;
  const r = spawnSync(process.execPath, [bin, ...args], {
    cwd: repoRoot,
    env,
    encoding: 'utf8',
    input: '',
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Exit status non-zero, exactly one stderr line `tsvisor: ...` matching `pattern`, no stack. */
function assertUserError(r: Result, pattern: RegExp, expectedStatus?: number): void {
  const lines = r.stderr.split('\n').filter((l) => l.length > 0);
  const ctx = `stderr was: ${JSON.stringify(r.stderr)}`;
  assert.notEqual(r.status, 0, `exit status must be non-zero; ${ctx}`);
  assert.notEqual(r.status, null, `must exit by itself, not time out; ${ctx}`);
  if (expectedStatus !== undefined) assert.equal(r.status, expectedStatus, ctx);
  assert.equal(lines.length, 1, `exactly one stderr line; ${ctx}`);
  assert.match(lines[0], /^tsvisor: \S/, ctx);
  assert.match(lines[0], pattern, ctx);
  assert.doesNotMatch(r.stderr, /^\s+at /m, `no stack trace; ${ctx}`);
  assert.doesNotMatch(r.stderr, /\b(TypeError|ReferenceError|Error \[)/, ctx);
  assert.equal(r.stdout, '', 'nothing on stdout');
}

describe('tsvisor run: bad input', () => {
  test('missing kernel file', () => {
    const missing = join(dir, 'no-such-kernel');
    const r = tsvisor('run', '--kernel', missing);
    assertUserError(r, /kernel file not found/);
    assert.ok(r.stderr.includes(missing), 'names the path');
  });

  test('kernel that is a text file', () => {
    const r = tsvisor('run', '--kernel', text);
    assertUserError(r, /not a RISC-V kernel \(expected a Linux Image or ELF64 RISC-V executable\)/);
    assert.ok(r.stderr.includes(text), 'names the path');
  });

  test('kernel that is an ELF for another machine', () => {
    assertUserError(tsvisor('run', '--kernel', elfX86), /not a RISC-V kernel/);
  });

  test('kernel that is empty', () => {
    assertUserError(tsvisor('run', '--kernel', empty), /kernel file is empty/);
  });

  test('a directory passed as kernel', () => {
    const r = tsvisor('run', '--kernel', subdir);
    assertUserError(r, /kernel is a directory/);
    assert.ok(r.stderr.includes(subdir), 'names the path');
  });

  test('--mem abc', () => {
    assertUserError(tsvisor('run', '--kernel', image, '--mem', 'abc'), /invalid --mem 'abc': expected a size like 512M or 1G/, 2);
  });

  test('--mem 1M', () => {
    assertUserError(tsvisor('run', '--kernel', image, '--mem', '1M'), /--mem 1M is too small \(minimum 16M\)/, 2);
  });

  test('--mem 99G', () => {
    assertUserError(tsvisor('run', '--kernel', image, '--mem', '99G'), /--mem 99G is too large \(maximum 3584M/, 2);
  });

  test('--mem without a value', () => {
    assertUserError(tsvisor('run', '--kernel', image, '--mem'), /option --mem needs a value/, 2);
  });

  test('--smp -1 (a value read as an option)', () => {
    assertUserError(tsvisor('run', '--kernel', image, '--smp', '-1'), /option --smp needs a value; a value starting with '-' is written --smp=VALUE/, 2);
    assertUserError(tsvisor('run', '--kernel', image, '--smp=-1'), /--smp/, 2);
  });

  test('--jit with a value other than on/off', () => {
    assertUserError(tsvisor('run', '--kernel', image, '--jit', 'maybe'), /invalid --jit 'maybe': expected on or off/, 2);
    assertUserError(tsvisor('run', '--kernel', image, '--jit-cache', 'maybe'), /invalid --jit-cache 'maybe': expected on or off/, 2);
    assertUserError(tsvisor('run', '--kernel', image, '--smp', '2', '--hart-threads', 'x'), /invalid --hart-threads 'x': expected on or off/, 2);
  });

  test('unknown flag', () => {
    assertUserError(tsvisor('run', '--kernel', image, '--frobnicate'), /unknown option '--frobnicate'/, 2);
  });

  test('unexpected positional argument', () => {
    assertUserError(tsvisor('run', '--kernel', image, 'extra'), /unexpected argument 'extra'/, 2);
  });

  test('missing initrd file (valid kernel)', () => {
    const missing = join(dir, 'no-such-initrd');
    const r = tsvisor('run', '--kernel', image, '--initrd', missing);
    assertUserError(r, /initrd file not found/);
    assert.ok(r.stderr.includes(missing), 'names the path');
  });

  test('missing initrd with an ELF64 RISC-V kernel', () => {
    assertUserError(tsvisor('run', '--kernel', elfRiscv, '--initrd', join(dir, 'nope')), /initrd file not found/);
  });

  test('bios that is an ELF for another machine', () => {
    assertUserError(tsvisor('run', '--kernel', image, '--bios', elfX86), /not a RISC-V firmware/);
  });

  test('missing bios file', () => {
    assertUserError(tsvisor('run', '--kernel', image, '--bios', join(dir, 'fw.bin')), /bios file not found/);
  });

  test('bad --mirror', () => {
    assertUserError(tsvisor('run', '--kernel', image, '--mirror', 'not a uri'), /invalid --mirror/, 2);
  });
});

describe('tsvisor: other commands', () => {
  test('unknown command', () => {
    assertUserError(tsvisor('frobnicate'), /unknown command 'frobnicate'/, 2);
  });

  test('unknown top-level flag', () => {
    assertUserError(tsvisor('--frobnicate'), /unknown option '--frobnicate'/, 2);
  });

  test('image without subcommand', () => {
    assertUserError(tsvisor('image'), /needs a subcommand/, 2);
  });

  test('image build with unknown flag', () => {
    assertUserError(tsvisor('image', 'build', '--nope'), /unknown option '--nope'/, 2);
  });

  test('--version', () => {
    const r = tsvisor('--version');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^tsvisor \d+\.\d+\.\d+\n$/);
  });

  test('--help and run --help', () => {
    const r = tsvisor('--help');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Usage: tsvisor/);
    const rr = tsvisor('run', '--help');
    assert.equal(rr.status, 0, rr.stderr);
    for (const flag of ['--kernel', '--initrd', '--append', '--mem', '--bios', '--deterministic', '--mirror']) {
      assert.ok(rr.stdout.includes(flag), `run --help mentions ${flag}`);
    }
  });

  test('--gdb options: a bad address, --gdb-wait alone and a checkpoint interval off the grid are usage errors', () => {
    assertUserError(tsvisor('run', '--gdb', 'nonsense'), /invalid --gdb 'nonsense'/, 2);
    assertUserError(tsvisor('run', '--gdb', 'tcp:127.0.0.1:99999'), /invalid --gdb/, 2);
    assertUserError(tsvisor('run', '--gdb-wait'), /--gdb-wait needs --gdb/, 2);
    assertUserError(tsvisor('run', '--gdb', ':1234', '--gdb-checkpoint-every', '5'), /multiple of 2000000/, 2);
    assertUserError(tsvisor('gdb', 'vm'), /needs --listen/, 2);
  });
});
