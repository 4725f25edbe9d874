// Crash consistency of the qcow2 backend, CrashMonkey/ALICE style. A guest-like
// workload (writes and flushes through the BlockBackend interface, allocating
// thousands of clusters, new L2 tables, new refcount blocks and a grown refcount
// table) runs against an image made by qemu-img while every write(2) and fsync
// of the image file is recorded. Images are then rebuilt as crashes could leave
// them: every sampled prefix of the log, and random subsets in random order of
// the writes between two fsyncs. Each must pass `qemu-img check` (leaks are
// allowed, corruption is not) and hold every block written before the last
// flush() that completed in it, read back through our reader.
//
// TSVISOR_CRASH_SAMPLES sets how many states are checked (default 200; `npm run
// test:crash-long` checks 3000).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openQcow2 } from '../src/storage/qcow2.js';
import { IoRecorder, prefixState, rebuild, reorderedState, seeded, syncPoints, type CrashState, type LogEntry } from './lib/crash-log.js';
import { budget } from './lib/budget.js';

const SECTOR = 512;
const CLUSTER = 512; // small clusters: many L2 tables and refcount blocks from little data
const DISK = 64 * 1024 * 1024;
const SAMPLES = Number(process.env.TSVISOR_CRASH_SAMPLES ?? 200);

const hasQemuImg = spawnSync('qemu-img', ['--version']).status === 0;
const skip = hasQemuImg ? false : 'qemu-img not found (Debian: qemu-utils)';

/** Sector contents written by operation `op`: op and sector in the first 8 bytes, then a pattern of both. */
function pattern(op: number, sector: number): Uint8Array {
  const b = new Uint8Array(SECTOR);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, op);
  dv.setUint32(4, sector);
  const r = seeded(op * 1_000_003 + sector);
  for (let i = 8; i < SECTOR; i++) b[i] = (r() * 256) | 0;
  return b;
}

interface Op {
  id: number;
  firstSector: number;
  sectors: number;
  /** Log length when the write began. */
  start: number;
}

interface Workload {
  initial: Uint8Array;
  log: LogEntry[];
  ops: Op[];
  /** Log length when each flush() returned. */
  flushes: number[];
}

/** Runs the workload on a fresh qemu-img image and records the file I/O. */
function record(dir: string): Workload {
  const path = join(dir, 'recorded.qcow2');
  const made = spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `cluster_size=${CLUSTER},refcount_bits=64`, path, String(DISK)], { encoding: 'utf8' });
  assert.equal(made.status, 0, `qemu-img create: ${made.stderr}`);
  const initial = new Uint8Array(readFileSync(path));
  const rec = new IoRecorder(path);
  const ops: Op[] = [];
  const flushes: number[] = [];
  const rand = seeded(13);
  const img = openQcow2(path, {});
  rec.start();
  try {
    const totalSectors = DISK / SECTOR;
    let seqNext = 0;
    let written = 0;
    const write = (firstSector: number, sectors: number) => {
      const id = ops.length + 1;
      const buf = new Uint8Array(sectors * SECTOR);
      for (let s = 0; s < sectors; s++) buf.set(pattern(id, firstSector + s), s * SECTOR);
      ops.push({ id, firstSector, sectors, start: rec.log.length });
      // Every other write is vectored (half-sector pieces, so a cluster takes several), as guest requests are.
      if (id % 2) img.writev(firstSector * SECTOR, Array.from({ length: buf.length / 256 }, (_, i) => buf.subarray(i * 256, i * 256 + 256)));
      else img.write(firstSector * SECTOR, buf);
      written += sectors;
    };
    // About 2.5 MiB of data: past 4096 clusters, where the refcount table (one
    // cluster, 64 blocks of 64 counts) has to grow.
    while (written < 5000) {
      const kind = rand();
      if (kind < 0.4) {
        // a sequential stream, as a file copy makes
        const n = 8 + Math.floor(rand() * 120);
        write(seqNext, n);
        seqNext += n;
      } else if (kind < 0.8) {
        // scattered small writes: new L2 tables all over the disk
        write(Math.floor(rand() * (totalSectors - 8)), 1 + Math.floor(rand() * 8));
      } else if (ops.length > 0) {
        // rewriting data already there (in place)
        const o = ops[Math.floor(rand() * ops.length)];
        write(o.firstSector, Math.min(o.sectors, 4));
      }
      if (rand() < 0.3) {
        img.flush();
        flushes.push(rec.log.length);
      }
    }
    img.flush();
    flushes.push(rec.log.length);
  } finally {
    rec.stop();
    img.close();
  }
  return { initial, log: rec.log, ops, flushes };
}

/** What each sector may hold in a crash state: the value of the last completed flush, or a later write. */
function allowedValues(w: Workload, s: CrashState): Map<number, Set<number>> {
  let flushedAt = 0; // ops that began before this log position are covered by a completed flush
  for (const f of w.flushes) if (f <= s.durable) flushedAt = f;
  const allowed = new Map<number, Set<number>>();
  for (const op of w.ops) {
    if (op.start >= s.issued) break;
    for (let k = 0; k < op.sectors; k++) {
      const sector = op.firstSector + k;
      let set = allowed.get(sector);
      if (!set) allowed.set(sector, (set = new Set([0])));
      if (op.start < flushedAt) set.clear(); // an older value is no longer acceptable
      set.add(op.id);
    }
  }
  return allowed;
}

/** Which op wrote this sector (0: zeros), or an error message. */
function decode(b: Uint8Array, sector: number): number | string {
  if (b.every((x) => x === 0)) return 0;
  const dv = new DataView(b.buffer, b.byteOffset);
  const op = dv.getUint32(0);
  if (dv.getUint32(4) !== sector) return `holds sector ${dv.getUint32(4)}'s data`;
  const want = pattern(op, sector);
  return b.every((x, i) => x === want[i]) ? op : `holds damaged data of op ${op}`;
}

interface Verdict {
  ok: boolean;
  why: string;
}

function checkState(w: Workload, s: CrashState, file: string): Verdict {
  writeFileSync(file, rebuild(w.initial, w.log, s));
  const r = spawnSync('qemu-img', ['check', '-f', 'qcow2', '--output=json', file], { encoding: 'utf8' });
  // 0: clean, 3: leaked clusters only; 2: corruption, 1: the check could not finish.
  if (r.status !== 0 && r.status !== 3) {
    return { ok: false, why: `qemu-img check exited with ${r.status}: ${(r.stdout + r.stderr).slice(0, 1500)}` };
  }
  const img = openQcow2(file, { readOnly: true });
  try {
    const buf = new Uint8Array(SECTOR);
    for (const [sector, values] of allowedValues(w, s)) {
      img.read(sector * SECTOR, buf);
      const got = decode(buf, sector);
      if (typeof got === 'string') return { ok: false, why: `sector ${sector} ${got}` };
      if (!values.has(got)) {
        return { ok: false, why: `sector ${sector} holds op ${got || 'zeros'}, expected one of ops ${[...values].map((v) => v || 'zeros').join(', ')}` };
      }
    }
  } finally {
    img.close();
  }
  return { ok: true, why: '' };
}

test('qcow2 metadata is crash consistent: every prefix and reordering between fsyncs checks clean and keeps flushed data', { skip, timeout: budget(3_600_000) }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-crash-'));
  try {
    const w = record(dir);
    const writes = w.log.filter((e) => e.kind === 'write').length;
    const syncs = w.log.length - writes;
    const clusters = w.ops.reduce((n, o) => n + o.sectors, 0);
    t.diagnostic(`log: ${writes} writes, ${syncs} fsyncs for ${w.ops.length} guest writes (${clusters} clusters) and ${w.flushes.length} guest flushes`);
    // The workload must reach the interesting allocations for the check to mean anything.
    const grownTable = w.log.some((e) => e.kind === 'write' && e.pos === 48 && e.data.length === 12);
    assert.ok(grownTable, 'the workload grew the refcount table (header write at offset 48)');

    const rand = seeded(2026);
    const points = syncPoints(w.log);
    const states: CrashState[] = [];
    // Prefixes: the whole log, just before and after every sampled fsync, and random cut points.
    states.push(prefixState(w.log, w.log.length));
    for (let i = 0; i < SAMPLES / 2 - 1; i++) {
      const p = i % 2 === 0 ? Math.floor(rand() * (w.log.length + 1)) : Math.max(0, points[Math.floor(rand() * points.length)] - 1 - Math.floor(rand() * 3));
      states.push(prefixState(w.log, p));
    }
    for (let i = 0; i < SAMPLES / 2; i++) states.push(reorderedState(w.log, points[Math.floor(rand() * points.length)], rand));

    const file = join(dir, 'crash.qcow2');
    const failures: string[] = [];
    for (const s of states) {
      const v = checkState(w, s, file);
      if (!v.ok) failures.push(`${s.what}: ${v.why}`);
      if (failures.length >= 5) break;
    }
    t.diagnostic(`${states.length} crash states checked`);
    assert.deepEqual(failures, [], `crash states that are corrupt or lost flushed data:\n${failures.join('\n')}`);

    // The check has teeth: with the fsyncs ignored (any subset of all writes
    // lands), some states are corrupt or lose data.
    const noBarriers = w.log.map((e, i) => ({ e, i })).filter((x) => x.e.kind === 'write');
    let caught = 0;
    for (let k = 0; k < 5 && caught === 0; k++) {
      const landed = noBarriers.filter(() => rand() < 0.5).map((x) => x.i);
      const s: CrashState = { durable: 0, issued: w.log.length, landed, what: 'no barriers' };
      // Judge the data against the final flush, as a backend without ordering would promise.
      const v = checkState({ ...w, flushes: [] }, s, file);
      if (!v.ok) caught++;
    }
    assert.ok(caught > 0, 'ignoring the fsyncs never produced a bad image: the check cannot tell');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('flushes are batched: a long sequential write without flush() costs far fewer fsyncs than clusters', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-crash-'));
  try {
    const path = join(dir, 'seq.qcow2');
    assert.equal(spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `cluster_size=${CLUSTER}`, path, String(DISK)]).status, 0);
    const rec = new IoRecorder(path);
    const img = openQcow2(path, {});
    rec.start();
    const clusters = 4096;
    try {
      const chunk = new Uint8Array(64 * 1024).fill(0xa5);
      for (let off = 0; off < clusters * CLUSTER; off += chunk.length) img.write(off, chunk);
      img.flush();
    } finally {
      rec.stop();
      img.close();
    }
    const syncs = rec.log.filter((e) => e.kind === 'sync').length;
    // Per round: at most 3 fsyncs per 64 dirty L2 tables (4096 clusters here), plus one
    // per new refcount block (256 counts of 16 bits each), plus the final flush's.
    assert.ok(syncs <= clusters / 32, `${syncs} fsyncs for ${clusters} new clusters`);
    assert.ok(syncs >= 2, `${syncs} fsyncs: metadata must still be ordered`);
    const check = spawnSync('qemu-img', ['check', path], { encoding: 'utf8' });
    assert.equal(check.status, 0, check.stdout + check.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
