// qcow2 backend against QEMU's own tools: images made by qemu-img/qemu-io read
// back correctly, images tsvisor wrote pass `qemu-img check` and convert to the
// bytes we expect, broken images are refused with a clear message, and random
// metadata never makes the parser throw anything but a clean error.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { createQcow2, openQcow2 } from '../src/storage/qcow2.js';
import { ImageFile } from '../src/storage/qcow2-io.js';
import { DiskError } from '../src/storage/backend.js';

const K = 1024;
const M = 1024 * K;

const dir = mkdtempSync(join(tmpdir(), 'tsvisor-qcow2-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
let seq = 0;
const tmp = (name: string) => join(dir, `${seq++}-${name}`);

function qemuImg(...args: string[]): string {
  return execFileSync('qemu-img', args, { encoding: 'utf8' });
}
function qemuIo(path: string, fmt: string, ...cmds: string[]): void {
  const args = ['-f', fmt];
  for (const c of cmds) args.push('-c', c);
  execFileSync('qemu-io', [...args, path], { encoding: 'utf8' });
}
/** The image's contents as QEMU sees them. */
function qemuContents(path: string): Uint8Array {
  const out = tmp('convert.raw');
  qemuImg('convert', '-O', 'raw', path, out);
  const data = new Uint8Array(readFileSync(out));
  rmSync(out);
  return data;
}
/** `qemu-img check`: assert no corruption (and no leaks unless allowed). */
function assertClean(path: string, allowLeaks = false): void {
  const r = spawnSync('qemu-img', ['check', '--output=json', path], { encoding: 'utf8' });
  const report = JSON.parse(r.stdout || '{}') as { corruptions?: number; leaks?: number; 'check-errors'?: number };
  const msg = `qemu-img check ${path}: status ${r.status}\n${r.stdout}${r.stderr}`;
  assert.equal(report.corruptions ?? 0, 0, msg);
  assert.equal(report['check-errors'] ?? 0, 0, msg);
  if (!allowLeaks) assert.equal(report.leaks ?? 0, 0, msg);
  assert.ok(r.status === 0 || (allowLeaks && r.status === 3), msg);
}
function readAll(path: string): Uint8Array {
  const img = openQcow2(path, { readOnly: true });
  try {
    const buf = new Uint8Array(img.size);
    img.read(0, buf);
    // The vectored read (runs of clusters, pieces across cluster edges) gives the same bytes.
    const v = new Uint8Array(img.size);
    img.readv(0, pieces(v, img.size));
    assertSameBytes(v, buf, 'readv agrees with read');
    return buf;
  } finally {
    img.close();
  }
}
function assertSameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) assert.fail(`${what}: first difference at byte ${i} (0x${i.toString(16)}): got ${actual[i]}, expected ${expected[i]}`);
  }
}
/** Deterministic pseudo-random bytes. */
function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s;
  };
}
function randomBytes(n: number, seed: number): Uint8Array {
  const r = prng(seed);
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = r() & 0xff;
  return b;
}

const layouts = [
  { name: 'v3 64K clusters', opts: 'cluster_size=65536' },
  { name: 'v2 64K clusters', opts: 'cluster_size=65536,compat=0.10' },
  { name: 'v3 4K clusters', opts: 'cluster_size=4096' },
  { name: 'v3 512-byte clusters', opts: 'cluster_size=512' },
  { name: 'v2 2M clusters', opts: 'cluster_size=2097152,compat=0.10' },
  { name: 'v3 8-bit refcounts', opts: 'cluster_size=4096,refcount_bits=8' },
  { name: 'v3 1-bit refcounts', opts: 'cluster_size=4096,refcount_bits=1' },
  { name: 'v3 64-bit refcounts', opts: 'cluster_size=4096,refcount_bits=64' },
];

for (const { name, opts } of layouts) {
  test(`reads what qemu-io wrote (${name})`, () => {
    const p = tmp('img.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-o', opts, p, '8M');
    const cmds = ['write -P 0xab 0 64k', 'write -P 0xcd 1M 4k', 'write -P 0x11 5000k 3k', 'write -P 0x22 8188k 4k'];
    if (!opts.includes('compat=0.10')) cmds.push('write -z 1028k 64k');
    qemuIo(p, 'qcow2', ...cmds);
    const got = readAll(p);
    assert.equal(got[0], 0xab);
    assert.equal(got[M], 0xcd);
    assertSameBytes(got, qemuContents(p), name);
  });
}

test('reads compressed clusters (qemu-img convert -c)', () => {
  for (const cs of ['65536', '4096', '512']) {
    const raw = tmp('src.raw');
    const data = new Uint8Array(3 * M + 1234);
    data.set(randomBytes(300 * K, 7), 0); // incompressible
    for (let i = 400 * K; i < 2 * M; i++) data[i] = (i >> 6) & 0xff; // compressible
    writeFileSync(raw, data);
    const q = tmp('c.qcow2');
    qemuImg('convert', '-q', '-c', '-f', 'raw', '-O', 'qcow2', '-o', `cluster_size=${cs}`, raw, q);
    const got = readAll(q);
    const padded = new Uint8Array(got.length);
    padded.set(data.subarray(0, got.length));
    assertSameBytes(got, padded, `compressed, cluster ${cs}`);
  }
});

test('reads a backing chain: raw base + qcow2 overlay + qcow2 overlay', () => {
  const base = tmp('base.raw');
  writeFileSync(base, randomBytes(4 * M, 42));
  const o1 = tmp('o1.qcow2');
  const o2 = tmp('o2.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', '-b', base, '-F', 'raw', o1);
  qemuIo(o1, 'qcow2', 'write -P 0x55 4k 8k', 'write -P 0x66 1M 100k', 'write -z 2M 64k');
  qemuImg('create', '-q', '-f', 'qcow2', '-b', o1, '-F', 'qcow2', o2, '6M'); // larger than the base
  qemuIo(o2, 'qcow2', 'write -P 0x77 8k 4k', 'write -P 0x88 5M 4k', 'write -P 0x99 1050k 8k');
  const got = readAll(o2);
  assert.equal(got.length, 6 * M);
  assertSameBytes(got, qemuContents(o2), 'overlay chain');
});

/** `data` cut into views of random lengths (1 byte to 9 KiB), as a vectored request. */
function pieces(data: Uint8Array, seed: number): Uint8Array[] {
  const r = prng(seed);
  const out: Uint8Array[] = [];
  for (let p = 0; p < data.length; ) {
    const n = Math.min(data.length - p, 1 + (r() % (9 * K)));
    out.push(data.subarray(p, p + n));
    p += n;
  }
  return out;
}

interface Op { kind: 'write' | 'discard' | 'zero'; off: number; len: number; seed: number }

/** Apply random operations to the image and to a model of its contents. */
function randomOps(path: string, model: Uint8Array, seed: number, count: number, allowDiscard: boolean): void {
  const r = prng(seed);
  const img = openQcow2(path, {});
  try {
    const size = img.size;
    for (let i = 0; i < count; i++) {
      const k = r() % 10;
      const kind: Op['kind'] = k < 7 || !allowDiscard ? 'write' : k < 8 ? 'discard' : 'zero';
      const len = 1 + (r() % (k === 0 ? 300 * K : 20 * K));
      const off = r() % (size - len);
      if (kind === 'write') {
        const data = randomBytes(len, r());
        // Every other write goes through writev, cut into pieces as guest pages would be.
        if (i % 2) img.writev(off, pieces(data, r()));
        else img.write(off, data);
        model.set(data, off);
      } else if (kind === 'zero') {
        img.writeZeroes(off, len);
        model.fill(0, off, off + len);
      } else {
        // Discard whole clusters only; v3 images read them back as zeros.
        const cs = img.header.clusterSize;
        const a = Math.ceil(off / cs) * cs;
        const b = Math.floor((off + len) / cs) * cs;
        if (b > a) {
          img.discard(a, b - a);
          model.fill(0, a, b);
        }
      }
      if (i % 17 === 0) img.flush();
    }
    // Reading back through tsvisor agrees with the model too, whole and through readv.
    const back = new Uint8Array(size);
    img.read(0, back);
    assertSameBytes(back, model, 'read back after writes');
    const backv = new Uint8Array(size);
    img.readv(0, pieces(backv, seed));
    assertSameBytes(backv, model, 'read back through readv');
  } finally {
    img.close();
  }
}

test('writes: qemu-img check clean and contents match (v3 512-byte clusters, refcount table grows)', () => {
  const p = tmp('w.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=512', p, '24M');
  const model = new Uint8Array(24 * M);
  const reftable = (b: Buffer) => `${b.readBigUInt64BE(48)}/${b.readUInt32BE(56)}`;
  const before = reftable(readFileSync(p));
  randomOps(p, model, 1, 600, true);
  assert.notEqual(reftable(readFileSync(p)), before, 'the refcount table moved (grew)');
  assertClean(p);
  assertSameBytes(qemuContents(p), model, 'qemu sees what tsvisor wrote');
});

test('writes: v2 image, 4K clusters, across L2 boundaries', () => {
  const p = tmp('w2.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096,compat=0.10', p, '16M');
  const model = new Uint8Array(16 * M);
  randomOps(p, model, 2, 200, true);
  // One write spanning several L2 tables (one L2 table maps 2 MiB here).
  const img = openQcow2(p, {});
  const big = randomBytes(5 * M + 123, 99);
  img.write(1 * M + 77, big);
  model.set(big, 1 * M + 77);
  img.close();
  assertClean(p);
  assertSameBytes(qemuContents(p), model, 'v2 contents');
});

test('writes with 8-bit and 1-bit refcounts', () => {
  for (const bits of [8, 1, 64]) {
    const p = tmp(`r${bits}.qcow2`);
    qemuImg('create', '-q', '-f', 'qcow2', '-o', `cluster_size=512,refcount_bits=${bits}`, p, '8M');
    const model = new Uint8Array(8 * M);
    randomOps(p, model, 3 + bits, 120, bits !== 1);
    assertClean(p);
    assertSameBytes(qemuContents(p), model, `refcount_bits=${bits}`);
  }
});

test('writes to an overlay copy-on-write from the backing chain, base unchanged', () => {
  const base = tmp('base.raw');
  const baseData = randomBytes(4 * M, 5);
  writeFileSync(base, baseData);
  const mid = tmp('mid.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', '-b', base, '-F', 'raw', mid);
  qemuIo(mid, 'qcow2', 'write -P 0x5a 100k 300k');
  const top = tmp('top.qcow2');
  createQcow2(top, { size: 4 * M, clusterBits: 12, backing: mid, backingFormat: 'qcow2' });
  const model = qemuContents(mid);
  randomOps(top, model, 11, 150, true);
  assertClean(top);
  assertSameBytes(qemuContents(top), model, 'overlay contents');
  assertSameBytes(new Uint8Array(readFileSync(base)), baseData, 'base file unchanged');
});

test('rewrites compressed clusters as normal clusters', () => {
  const raw = tmp('src.raw');
  const data = new Uint8Array(2 * M);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) >> 10;
  writeFileSync(raw, data);
  const q = tmp('c.qcow2');
  qemuImg('convert', '-q', '-c', '-f', 'raw', '-O', 'qcow2', '-o', 'cluster_size=4096', raw, q);
  const model = new Uint8Array(data);
  randomOps(q, model, 21, 100, true);
  assertClean(q);
  assertSameBytes(qemuContents(q), model, 'after rewriting compressed clusters');
});

test('createQcow2 images pass qemu-img check and qemu reads what tsvisor wrote', () => {
  for (const clusterBits of [9, 12, 16, 21]) {
    const p = tmp(`new${clusterBits}.qcow2`);
    createQcow2(p, { size: 10 * M + 512, clusterBits });
    assertClean(p);
    const info = JSON.parse(qemuImg('info', '--output=json', p)) as { 'virtual-size': number; 'cluster-size': number };
    assert.equal(info['virtual-size'], 10 * M + 512);
    assert.equal(info['cluster-size'], 2 ** clusterBits);
    const model = new Uint8Array(10 * M + 512);
    randomOps(p, model, clusterBits, 60, true);
    assertClean(p);
    assertSameBytes(qemuContents(p), model, `created, cluster_bits ${clusterBits}`);
  }
  // A large virtual size needs several L1 clusters and refcount blocks with small clusters.
  const big = tmp('big.qcow2');
  createQcow2(big, { size: 64 * 1024 * M, clusterBits: 9 });
  assertClean(big);
});

test('read-only attachment never writes the file', () => {
  const p = tmp('ro.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', p, '4M');
  qemuIo(p, 'qcow2', 'write -P 0x33 0 8k');
  const before = readFileSync(p);
  const img = openQcow2(p, { readOnly: true });
  assert.throws(() => img.write(0, new Uint8Array(512)), /read-only/);
  assert.throws(() => img.discard(0, 65536), /read-only/);
  assert.throws(() => img.writeZeroes(0, 65536), /read-only/);
  img.flush();
  img.close();
  assert.deepEqual(readFileSync(p), before);
});

// ---- broken images ----

function patched(patch: (b: Buffer) => void, size = '4M', opts = 'cluster_size=65536'): string {
  const p = tmp('bad.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', '-o', opts, p, size);
  qemuIo(p, 'qcow2', 'write -P 0x44 0 4k');
  const b = readFileSync(p);
  patch(b);
  writeFileSync(p, b);
  return p;
}

function assertRefused(path: string, re: RegExp, readOnly = true): void {
  assert.throws(() => openQcow2(path, { readOnly }), (e: unknown) => {
    assert.ok(e instanceof DiskError, `expected a DiskError, got ${String(e)}`);
    assert.match(e.message, re);
    assert.ok(!e.message.includes('\n'), 'one-line message');
    return true;
  });
}

test('refuses broken or unsupported images with a message naming the problem', () => {
  const trunc = tmp('trunc.qcow2');
  writeFileSync(trunc, Buffer.from([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3, 0, 0]));
  assertRefused(trunc, /qcow2: truncated header/);

  assertRefused(patched((b) => b.writeUInt32BE(0x00001000, 40)), /L1 table at 0x1000000[0-9a-f]{5} extends past end of file/);
  assertRefused(patched((b) => b.writeUInt32BE(1, 32)), /encrypted images are not supported/);
  assertRefused(patched((b) => b.writeUInt32BE(2, 32)), /encrypted.*LUKS/);
  assertRefused(patched((b) => b.writeUInt32BE(1 << 10, 76)), /unknown incompatible feature bit 10/);
  assertRefused(patched((b) => b.writeUInt32BE(2, 76)), /marked corrupt/);
  assertRefused(patched((b) => b.writeUInt32BE(4, 76)), /external data file/);
  assertRefused(patched((b) => b.writeUInt32BE(16, 76)), /extended L2/);
  assertRefused(patched((b) => { b.writeUInt32BE(8, 76); b[104] = 1; }), /zstd/);
  assertRefused(patched((b) => b.writeUInt32BE(4, 4)), /unsupported version 4/);
  assertRefused(patched((b) => b.writeUInt32BE(22, 20)), /cluster_bits 22 out of range/);
  assertRefused(patched((b) => b.writeUInt32BE(0, 0)), /bad magic/);
  assertRefused(patched((b) => b.writeUInt32BE(0x7fff, 48)), /refcount table at .* extends past end of file/, false);
  assertRefused(patched((b) => b.writeUInt32BE(0, 36)), /L1 table too small/);
  // Dirty images open read-only, not for writing.
  const dirty = patched((b) => b.writeUInt32BE(1, 76));
  openQcow2(dirty, { readOnly: true }).close();
  assertRefused(dirty, /dirty/, false);
});

test('random metadata: open and read throw only clean errors and never read outside the file', () => {
  const p = tmp('fuzz-base.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=512', p, '1M');
  qemuIo(p, 'qcow2', 'write -P 0x12 0 8k', 'write -P 0x34 300k 2k', 'write -z 600k 4k');
  const original = readFileSync(p);
  const target = tmp('fuzz.qcow2');
  ImageFile.onRead = (pos, len, fileSize) => {
    if (pos < 0 || pos + len > fileSize) throw new Error(`read outside the file: ${pos}+${len} > ${fileSize}`);
  };
  try {
    fc.assert(
      fc.property(
        fc.array(fc.record({ at: fc.nat(original.length - 1), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 24 }),
        fc.array(fc.record({ at: fc.nat(8 * 512), value: fc.integer({ min: 0, max: 255 }) }), { maxLength: 8 }),
        fc.nat(original.length),
        (anywhere, metadata, truncateTo) => {
          const b = Buffer.from(original);
          for (const { at, value } of anywhere) b[at] = value;
          for (const { at, value } of metadata) if (at < b.length) b[at] = value;
          writeFileSync(target, truncateTo > original.length / 2 ? b : b.subarray(0, truncateTo));
          let img;
          try {
            img = openQcow2(target, { readOnly: true });
          } catch (e) {
            assert.ok(e instanceof DiskError, `open threw ${String(e)}`);
            assert.ok(!(e as Error).message.includes('\n'));
            return;
          }
          try {
            const buf = new Uint8Array(64 * 1024);
            for (let off = 0; off < img.size && off < 2 * M; off += buf.length) {
              try {
                img.read(off, buf.subarray(0, Math.min(buf.length, img.size - off)));
              } catch (e) {
                assert.ok(e instanceof DiskError, `read threw ${String(e)}`);
              }
            }
          } finally {
            img.close();
          }
        },
      ),
      { numRuns: 300, seed: 4242 },
    );
  } finally {
    ImageFile.onRead = undefined;
  }
});


test('random metadata, opened for writing: writes throw only clean errors', () => {
  const p = tmp('wfuzz-base.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=512', p, '1M');
  qemuIo(p, 'qcow2', 'write -P 0x12 0 8k', 'write -P 0x34 300k 2k', 'write -z 600k 4k');
  const original = readFileSync(p);
  const target = tmp('wfuzz.qcow2');
  fc.assert(
    fc.property(
      fc.array(fc.record({ at: fc.nat(original.length - 1), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 16 }),
      fc.array(fc.record({ off: fc.nat(M - 1), len: fc.integer({ min: 1, max: 70 * K }), op: fc.nat(2) }), { minLength: 1, maxLength: 6 }),
      (mutations, ops) => {
        const b = Buffer.from(original);
        for (const { at, value } of mutations) b[at] = value;
        writeFileSync(target, b);
        let img;
        try {
          img = openQcow2(target, {});
        } catch (e) {
          assert.ok(e instanceof DiskError, `open threw ${String(e)}`);
          return;
        }
        try {
          for (const { off, len, op } of ops) {
            const n = Math.min(len, img.size - off);
            if (n <= 0) continue;
            try {
              if (op === 0) img.write(off, new Uint8Array(n).fill(0x5c));
              else if (op === 1) img.writeZeroes(off, n);
              else img.discard(off, n);
            } catch (e) {
              assert.ok(e instanceof DiskError, `op ${op} threw ${String(e)}`);
            }
          }
        } finally {
          // Metadata is written back on close, so corruption can surface here too.
          try {
            img.close();
          } catch (e) {
            assert.ok(e instanceof DiskError, `close threw ${String(e)}`);
          }
        }
      },
    ),
    { numRuns: 200, seed: 777 },
  );
});

// ---- crash safety ----

test('a process killed mid-write leaves a consistent image with flushed data present', async () => {
  const { crashPattern, CRASH_LEN, CRASH_STRIDE } = await import('./fixtures/qcow2-crash-child.js');
  const child = new URL('./fixtures/qcow2-crash-child.js', import.meta.url).pathname;
  for (const seed of [1, 2, 3]) {
    const base = tmp('crash-base.raw');
    writeFileSync(base, randomBytes(8 * M, seed));
    const p = tmp('crash.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=1024', '-b', base, '-F', 'raw', p, '1G');
    const { spawn } = await import('node:child_process');
    const proc = spawn(process.execPath, [child, p], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const delay = 150 + ((seed * 7919) % 700);
    let timer: NodeJS.Timeout | undefined;
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      timer ??= setTimeout(() => proc.kill('SIGKILL'), delay);
    });
    const status = await new Promise<{ code: number | null; signal: string | null }>((res) =>
      proc.on('exit', (code, signal) => res({ code, signal })),
    );
    if (timer) clearTimeout(timer);
    assert.equal(status.signal, 'SIGKILL', `child was killed mid-run: ${JSON.stringify(status)} ${err}`);
    const flushed = [...out.matchAll(/flushed (\d+)/g)].map((m) => Number(m[1]));
    assert.ok(flushed.length > 0, `the child flushed at least once (stderr: ${err})`);
    const last = flushed[flushed.length - 1];
    assertClean(p, true);
    const img = openQcow2(p, { readOnly: true });
    try {
      const buf = new Uint8Array(CRASH_LEN);
      for (let i = 0; i <= last; i++) {
        img.read(i * CRASH_STRIDE, buf);
        assertSameBytes(buf, crashPattern(i, CRASH_LEN), `flushed region ${i} of ${last} (seed ${seed})`);
      }
    } finally {
      img.close();
    }
  }
});
