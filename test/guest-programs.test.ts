// The guest test programs (test/guest/) under tsvisor, compared byte for byte
// with QEMU, the oracle.
//
// Before the comparisons the suite brings build/guest/ up to date: if any ELF or
// expected output is missing or older than the sources it depends on, it runs
// test/guest/check-qemu.sh (which builds every program with the cross compiler
// and records QEMU's output and exit status). Otherwise nothing is rebuilt, so
// a second run only pays for the emulation. The comparison itself always runs.
//
// Output normalisation (the only one): carriage returns are removed and
// whitespace at the very end of the output is trimmed, on both sides. QEMU's
// serial console and a pipe may differ in line endings and in a trailing
// newline; nothing else is forgiven.
//
// User programs run through runUserElf (U-mode, syscalls write/exit).
// Bare programs run in a VirtMachine with no kernel (M-mode at the ELF entry),
// deterministic time, until the test device powers the machine off; an
// instruction cap turns a hang into a failure. They must also print no FAIL
// line and exit 0.

import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runUserElf } from '../src/machine/user-mode.js';
import { VirtMachine, EXIT_WFI } from '../src/machine/virt.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SRC = join(ROOT, 'test/guest');
const OUT = join(ROOT, 'build/guest');
const WASM = join(ROOT, 'build/cpu.wasm');

type Kind = 'user' | 'bare';

interface Program {
  kind: Kind;
  name: string;
  source: string;
}

/** Every program with a source file, so a new program gets its own subtest. */
function listPrograms(kind: Kind): Program[] {
  const dir = join(SRC, kind);
  return readdirSync(dir)
    .filter((f) => /\.(S|c)$/.test(f))
    .sort()
    .map((f) => ({ kind, name: f.replace(/\.(S|c)$/, ''), source: join(dir, f) }));
}

const programs: Program[] = [...listPrograms('user'), ...listPrograms('bare')];

const elfPath = (p: Program) => join(OUT, p.kind, `${p.name}.elf`);
const expectedPath = (p: Program, ext: 'out' | 'rc' | 'err') => join(OUT, 'expected', p.kind, `${p.name}.${ext}`);

function mtime(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
}

/** Newest modification time among the files every program depends on. */
function sharedInputsMtime(): number {
  const files = [
    join(SRC, 'build.sh'),
    join(SRC, 'check-qemu.sh'),
    join(SRC, 'link.ld'),
    ...['common', 'include'].flatMap((d) => readdirSync(join(SRC, d)).map((f) => join(SRC, d, f))),
  ];
  return Math.max(...files.map(mtime));
}

/** Why the cached ELF/expected files of `p` cannot be used, or null when they are fresh. */
function staleReason(p: Program, shared: number): string | null {
  const newestSource = Math.max(shared, mtime(p.source));
  const elf = mtime(elfPath(p));
  if (elf < 0) return `${p.kind}/${p.name}.elf missing`;
  if (elf < newestSource) return `${p.kind}/${p.name}.elf older than its sources`;
  for (const ext of ['out', 'rc'] as const) {
    const t = mtime(expectedPath(p, ext));
    if (t < 0) return `expected ${p.kind}/${p.name}.${ext} missing`;
    if (t < elf) return `expected ${p.kind}/${p.name}.${ext} older than the ELF`;
  }
  return null;
}

/** Only carriage returns and whitespace at the very end are forgiven. */
function normalise(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('latin1').replace(/\r/g, '').replace(/\s+$/, '');
}

/** The first differing line, for a readable failure message. */
function firstDifference(got: string, want: string): string {
  const g = got.split('\n');
  const w = want.split('\n');
  for (let i = 0; i < Math.max(g.length, w.length); i++) {
    if (g[i] !== w[i]) {
      return `first difference at line ${i + 1}:\n  qemu:    ${JSON.stringify(w[i] ?? '<end of output>')}\n  tsvisor: ${JSON.stringify(g[i] ?? '<end of output>')}`;
    }
  }
  return 'outputs are equal';
}

function assertSameOutput(got: Uint8Array, p: Program): void {
  const want = normalise(readFileSync(expectedPath(p, 'out')));
  const have = normalise(got);
  if (have !== want) {
    assert.fail(
      `${p.kind}/${p.name}: output differs from QEMU's (${expectedPath(p, 'out')})\n${firstDifference(have, want)}\n` +
        `--- tsvisor output (last 1500 chars) ---\n${have.slice(-1500)}`,
    );
  }
}

function expectedStatus(p: Program): number {
  const text = readFileSync(expectedPath(p, 'rc'), 'utf8').trim();
  const rc = Number(text);
  assert.ok(Number.isInteger(rc), `bad expected status file ${expectedPath(p, 'rc')}: ${JSON.stringify(text)}`);
  return rc;
}

// ---- bare programs: a VirtMachine with the ELF as M-mode firmware ----

const BARE_RAM = 128 * 1024 * 1024;
const SLICE = 1_000_000;
/** Instruction cap for one bare program (the largest needs a few million). */
const BARE_MAX_INSTRUCTIONS = 500_000_000;
/** Cap on idle skips, so a guest that only sleeps also ends. */
const BARE_MAX_IDLE_SKIPS = 100_000;

interface BareResult {
  output: Uint8Array;
  status: number | null;
  error?: string;
}

function runBare(wasm: Uint8Array, elf: Uint8Array, jit: boolean): BareResult {
  const out: Uint8Array[] = [];
  let power: { kind: string; code: number } | null = null;
  const created = VirtMachine.create(
    wasm,
    { ramSize: BARE_RAM, bios: elf, bootargs: '', deterministic: true, jit },
    {
      consoleOut: (data) => out.push(Uint8Array.from(data)),
      power: (kind, code) => {
        power ??= { kind, code };
      },
    },
  );
  if (!created.ok) return { output: new Uint8Array(), status: null, error: `VirtMachine.create failed: ${created.error}` };
  const m = created.machine;
  let executed = 0;
  let skips = 0;
  let error: string | undefined;
  while (power === null) {
    if (executed >= BARE_MAX_INSTRUCTIONS) {
      error = `no power-off after ${executed} instructions (hang?)`;
      break;
    }
    const r = m.runSlice(SLICE);
    executed += SLICE;
    if (power !== null) break;
    if (r === EXIT_WFI) {
      if (++skips > BARE_MAX_IDLE_SKIPS) {
        error = `still idle after ${BARE_MAX_IDLE_SKIPS} timer skips (hang?)`;
        break;
      }
      if (!m.skipToNextDeadline()) {
        error = 'WFI with no timer armed: the program can never wake up';
        break;
      }
    }
  }
  const output = Buffer.concat(out);
  const p = power as { kind: string; code: number } | null;
  if (p === null) return { output, status: null, error };
  // The test device: 0x5555 = pass (status 0); (n << 16) | 0x3333 = fail with status n.
  const status = p.kind === 'poweroff' ? 0 : p.kind === 'fail' ? p.code : -1;
  return { output, status, error: p.kind === 'reset' ? 'the program asked for a reset' : undefined };
}

// ---- the suite ----

describe('guest programs: tsvisor vs QEMU', () => {
  let prepared: { error?: string; log: string; shared?: number } = { log: '' };
  let wasm: Uint8Array;

  before(() => {
    wasm = new Uint8Array(readFileSync(WASM));
    const shared = sharedInputsMtime();
    const stale = programs.map((p) => staleReason(p, shared)).filter((r): r is string => r !== null);
    if (stale.length === 0) return;
    // Build every program and record QEMU's outputs. A non-zero status here can mean
    // a QEMU run failed its own checks; each subtest then reports what it finds.
    const r = spawnSync('bash', [join(SRC, 'check-qemu.sh')], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 10 * 60 * 1000,
    });
    const log = `check-qemu.sh (run because ${stale[0]}${stale.length > 1 ? `, and ${stale.length - 1} more` : ''}):\n${r.stdout ?? ''}${r.stderr ?? ''}`;
    prepared = { log };
    if (r.error) prepared.error = `could not run check-qemu.sh: ${r.error.message}\n${log}`;
    // A program still stale afterwards (tools missing, build broken, or QEMU's run of it
    // failed and its reference was discarded) fails alone, in its own subtest.
    prepared.shared = shared;
  });

  test('there are user and bare programs', () => {
    assert.ok(programs.some((p) => p.kind === 'user'), 'no user programs in test/guest/user');
    assert.ok(programs.some((p) => p.kind === 'bare'), 'no bare programs in test/guest/bare');
  });

  // Every program runs with the translator on and off: both must match QEMU.
  for (const p of programs) for (const jit of [true, false]) {
    test(`${p.kind}/${p.name} (jit ${jit ? 'on' : 'off'})`, () => {
      if (prepared.error) assert.fail(prepared.error);
      const stale = prepared.shared === undefined ? null : staleReason(p, prepared.shared);
      if (stale) assert.fail(`no usable QEMU reference for ${p.kind}/${p.name} (${stale}); see test/REQUIREMENTS.md\n${prepared.log}`);
      assert.ok(existsSync(elfPath(p)), `missing ${elfPath(p)}\n${prepared.log}`);
      assert.ok(existsSync(expectedPath(p, 'out')), `missing QEMU output ${expectedPath(p, 'out')}\n${prepared.log}`);
      const want = expectedStatus(p);
      const elf = new Uint8Array(readFileSync(elfPath(p)));

      if (p.kind === 'user') {
        const r = runUserElf(wasm, elf, { jit });
        assert.equal(r.error, undefined, `${p.kind}/${p.name}: ${r.error}\n--- output ---\n${normalise(r.output).slice(-1500)}`);
        assertSameOutput(r.output, p);
        assert.equal(r.exitCode, want, `${p.kind}/${p.name}: exit status ${r.exitCode}, QEMU's was ${want}`);
        assert.ok(normalise(r.output).endsWith('== done'), `${p.kind}/${p.name}: output does not end with "== done"`);
        assert.equal(r.exitCode, 0, `${p.kind}/${p.name}: exit status ${r.exitCode}`);
        // The translator tests must have run translated code (and jit_region, a region).
        if (jit && p.name.startsWith('jit_')) assert.ok(r.translations > 0, `${p.name}: nothing translated`);
        if (jit && p.name === 'jit_region') assert.ok(r.regions > 0, `${p.name}: no region made`);
      } else {
        const r = runBare(wasm, elf, jit);
        const text = normalise(r.output);
        assert.equal(r.error, undefined, `${p.kind}/${p.name}: ${r.error}\n--- output ---\n${text.slice(-1500)}`);
        assertSameOutput(r.output, p);
        assert.equal(r.status, want, `${p.kind}/${p.name}: exit status ${r.status}, QEMU's was ${want}`);
        const fails = text.split('\n').filter((l) => l.startsWith('FAIL'));
        assert.deepEqual(fails, [], `${p.kind}/${p.name}: failed checks`);
        assert.ok(text.endsWith('== ALL PASS'), `${p.kind}/${p.name}: output does not end with "== ALL PASS"`);
        assert.equal(r.status, 0, `${p.kind}/${p.name}: exit status ${r.status}`);
      }
    });
  }
});
