// Snapshot files as untrusted input: a real machine (a small bare-metal
// program) is snapshotted to a directory and restored; then the files are
// damaged in the ways a disk, a transfer or an attacker would (truncation,
// another version, a bad checksum, fields out of range) and every one must be
// refused with a clear message: by readSnapshot, by the machine's restore, and
// by `tsvisor run --restore` as a one-line error with exit status 1.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync, unlinkSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VirtMachine, type MachineConfig } from '../src/machine/virt.js';
import { readSnapshot, readSnapshotCached, writeSnapshot, loadSnapshotMemory, SnapshotError, STATE_FILE, MEMORY_FILE } from '../src/vm/snapshot.js';
import { defaultWasmPath } from '../src/vm/vm-handle.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin/tsvisor.js');
const MEM_MIB = 16;

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'tsvisor-snapfile-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A counting loop in M-mode: a0 += 1 forever (addi a0,a0,1; j -4). */
const PROGRAM = Uint8Array.from([0x13, 0x05, 0x15, 0x00, 0x6f, 0xf0, 0xdf, 0xff]);

function machineConfig(): MachineConfig {
  return { ramSize: MEM_MIB << 20, bios: PROGRAM, bootargs: '', deterministic: true, virtioConsole: true };
}
const host = { consoleOut: () => {}, power: () => {} };
const wasm = () => new Uint8Array(readFileSync(defaultWasmPath()));

/** Boot the program, run it a while, write a snapshot into `name`; returns the saved a0. */
function makeSnapshot(name: string): { path: string; a0: bigint } {
  const created = VirtMachine.create(wasm(), machineConfig(), host);
  assert.ok(created.ok, !created.ok ? created.error : '');
  const m = created.machine;
  m.runSlice(100_000);
  const path = join(dir, name);
  const config = { kernel: join(dir, 'no-kernel'), append: '', memMiB: MEM_MIB, deterministic: true, virtioConsole: true };
  writeSnapshot(path, { instret: Number(m.core.instret), config, machine: m.saveState() }, m.core.ram);
  return { path, a0: m.core.getX(10) };
}

/** Run exactly to `target` instructions (a slice may end early, e.g. to translate a hot loop). */
function runTo(m: VirtMachine, target: bigint): void {
  while (m.core.instret < target) m.runSlice(Number(target - m.core.instret));
}

function restoreFrom(path: string): ReturnType<typeof VirtMachine.restore> {
  const snap = readSnapshot(path);
  return VirtMachine.restore(wasm(), { ...machineConfig(), bios: undefined }, host, snap.machine, (core) => {
    loadSnapshotMemory(path, core.ram);
    return { ok: true };
  });
}

/** Rewrite the state file through `edit`, with a valid checksum unless `keepSum`. */
function editState(path: string, edit: (f: { version: number; magic: string; sha256: string; payload: Record<string, any> }) => void, keepSum = false): void {
  const file = JSON.parse(readFileSync(join(path, STATE_FILE), 'utf8'));
  edit(file);
  if (!keepSum) file.sha256 = createHash('sha256').update(JSON.stringify(file.payload)).digest('hex');
  writeFileSync(join(path, STATE_FILE), JSON.stringify(file));
}

test('a snapshot restores the machine exactly, and it runs on like the original', () => {
  const created = VirtMachine.create(wasm(), machineConfig(), host);
  assert.ok(created.ok);
  const m = created.machine;
  runTo(m, 50_000n);
  const path = join(dir, 'exact');
  writeSnapshot(path, { instret: Number(m.core.instret), config: { kernel: 'k', append: '', memMiB: MEM_MIB, deterministic: true }, machine: m.saveState() }, m.core.ram);
  const r = restoreFrom(path);
  assert.ok(r.ok, !r.ok ? r.error : '');
  const m2 = r.machine;
  assert.deepEqual(JSON.parse(JSON.stringify(m2.saveState())), JSON.parse(JSON.stringify(m.saveState())));
  assert.deepEqual(m2.core.ram, m.core.ram, 'guest RAM identical');
  const target = m.core.instret + 12_345n;
  runTo(m, target);
  runTo(m2, target);
  assert.equal(m2.core.getX(10), m.core.getX(10), 'the same register after the same instructions');
  assert.equal(m2.core.instret, m.core.instret);
  const snap = readSnapshot(path);
  assert.ok(snap.memory.dataPages >= 1 && snap.memory.dataPages < (MEM_MIB << 20) / 4096 / 2, 'only pages with data are stored');
});

test('readSnapshotCached: the same snapshot read again is not re-read; a changed or removed one is', () => {
  const a = makeSnapshot('cached');
  const first = readSnapshotCached(a.path);
  assert.equal(readSnapshotCached(a.path), first, 'unchanged files: the payload read before');
  // Another snapshot written over it (new files): read afresh.
  const other = makeSnapshot('other');
  rmSync(a.path, { recursive: true });
  cpSync(other.path, a.path, { recursive: true });
  const again = readSnapshotCached(a.path);
  assert.notEqual(again, first);
  assert.deepEqual(again, readSnapshot(other.path));
  writeFileSync(join(a.path, STATE_FILE), '{');
  assert.throws(() => readSnapshotCached(a.path), SnapshotError, 'a damaged state file is seen at once');
  rmSync(a.path, { recursive: true });
  assert.throws(() => readSnapshotCached(a.path), SnapshotError);
});

test('damaged or hostile snapshot files are refused with a clear error', () => {
  const { path: good } = makeSnapshot('good');
  let k = 0;
  const variant = (damage: (p: string) => void): string => {
    const p = join(dir, `bad${k++}`);
    cpSync(good, p, { recursive: true });
    damage(p);
    return p;
  };
  const refusedByRead: [string, (p: string) => void, RegExp][] = [
    ['truncated state file', (p) => truncateSync(join(p, STATE_FILE), 200), /corrupt/],
    ['missing state file', (p) => unlinkSync(join(p, STATE_FILE)), /missing/],
    ['newer format version', (p) => editState(p, (f) => (f.version = 99)), /newer/],
    ['wrong magic', (p) => editState(p, (f) => (f.magic = 'qemu')), /not a tsvisor snapshot/],
    ['payload changed, checksum not', (p) => editState(p, (f) => (f.payload.instret += 1), true), /checksum/],
    ['truncated memory file', (p) => truncateSync(join(p, MEMORY_FILE), 4096), /expected|truncated/],
    ['memory size against config', (p) => editState(p, (f) => (f.payload.config.memMiB = 32)), /memory/],
    ['bad config', (p) => editState(p, (f) => (f.payload.config.disks = [{ path: 42 }])), /disk/],
  ];
  for (const [what, damage, re] of refusedByRead) {
    const p = variant(damage);
    assert.throws(() => readSnapshot(p), (e: unknown) => e instanceof SnapshotError && re.test(e.message), what);
  }
  const refusedByRestore: [string, (f: { payload: Record<string, any> }) => void, RegExp][] = [
    ['privilege out of range', (f) => (f.payload.machine.cpu.csr.priv = '0x2'), /privilege/],
    ['register not a u64', (f) => (f.payload.machine.cpu.x[5] = '0x12345678901234567'), /hex/],
    ['UART FIFO overfull', (f) => (f.payload.machine.uart.rx = new Array(100).fill(1)), /uart/],
    ['PLIC priority out of range', (f) => (f.payload.machine.plic.priority[1] = 99), /plic/],
    ['a virtio device missing', (f) => f.payload.machine.virtio.pop(), /virtio devices/],
    ['virtio ring outside RAM', (f) => {
      const q = f.payload.machine.virtio[0].state.queues[0];
      q.ring.ready = true;
      q.ring.desc = 0x8000_0000 + (MEM_MIB << 20);
      q.ring.size = 64;
    }, /outside guest RAM/],
    ['machine state not an object', (f) => (f.payload.machine.cpu = []), /cpu/],
  ];
  for (const [what, edit, re] of refusedByRestore) {
    const p = variant((d) => editState(d, edit));
    const r = restoreFrom(p);
    assert.equal(r.ok, false, what);
    assert.match(!r.ok ? r.error : '', re, what);
  }
});

test('tsvisor run --restore with a bad snapshot: one line on stderr, status 1', () => {
  const { path } = makeSnapshot('cli');
  editState(path, (f) => (f.version = 7));
  for (const p of [path, join(dir, 'nowhere')]) {
    const r = spawnSync(process.execPath, [CLI, 'run', '--restore', p], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /^tsvisor: .*(newer|missing)/);
    assert.equal(r.stderr.trim().split('\n').length, 1, 'one line, no stack trace');
  }
});
