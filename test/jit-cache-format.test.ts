// The translation cache's file (src/vm/jit-cache.ts, src/jit/warm-start.ts):
// what is read back is exactly what was written, and a damaged, truncated or
// foreign file is refused with a reason instead of being used or throwing, and
// a batch is offered only while the guest bytes it came from are unchanged.
// (The boot test, jit-cache.test.ts, runs real batches through a real guest.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeBatches, encodeBatches, batchesBuildId, WarmStart, type CachedBatch } from '../src/jit/warm-start.js';
import { payloadOf, unwrap, wrap, cacheKey, jitCacheDir, jitCacheWanted } from '../src/vm/jit-cache.js';
import { parseRunArgs, type RunOptions } from '../src/cli/main.js';

const RAM = 1 << 20;
const ID = new Uint8Array(32).map((_, i) => i * 7);

function sample(): CachedBatch[] {
  const code = (n: number, seed: number) => new Uint8Array(n).map((_, i) => (i * 31 + seed) & 0xff);
  return [
    {
      slot: 16, link: 0,
      links: [{ target: 0xffffffff80001000n, dynamic: false, local: false }, { target: 0n, dynamic: true, local: false }, { target: 0xffffffff80001040n, dynamic: false, local: true }],
      blocks: [
        { va: 0xffffffff80001000n, off: 0x1000, lo: 0x1000, bytes: code(40, 1), insns: 12 },
        { va: 0x2000n, off: 0x2000, lo: 0x2000, bytes: new Uint8Array(0), insns: 0 },
      ],
      module: code(300, 9),
    },
    { slot: 18, link: 3, links: [], blocks: [{ va: 0x80003000n, off: 0x3010, lo: 0x3000, bytes: code(64, 2), insns: 20 }], module: code(100, 3) },
  ];
}

test('a cache file reads back as written', () => {
  const batches = sample();
  const payload = encodeBatches(ID, batches);
  assert.deepEqual(batchesBuildId(payload), ID);
  const back = unwrap(wrap(payload), ID, RAM);
  assert.deepEqual(back, batches);
});

test('a truncated file is refused at every length, never thrown on', () => {
  const file = wrap(encodeBatches(ID, sample()));
  for (let n = 0; n < file.length; n++) {
    const r = unwrap(file.subarray(0, n), ID, RAM);
    assert.equal(typeof r, 'string', `a file cut to ${n} of ${file.length} bytes was accepted`);
  }
  // Without the checksum in the way, the parser itself refuses every truncation too.
  const payload = encodeBatches(ID, sample());
  for (let n = 0; n < payload.length; n++) assert.equal(typeof decodeBatches(payload.subarray(0, n), ID, RAM), 'string');
});

test('any damaged byte is refused (the checksum covers the whole payload)', () => {
  const file = wrap(encodeBatches(ID, sample()));
  for (let i = 0; i < file.length; i++) {
    const bad = Buffer.from(file);
    bad[i] ^= 0x40;
    assert.equal(typeof unwrap(bad, ID, RAM), 'string', `flipping byte ${i} went unnoticed`);
  }
});

test('a file of another translator build, or with blocks outside RAM, is refused', () => {
  const other = new Uint8Array(ID).map((v) => v ^ 1);
  assert.match(String(unwrap(wrap(encodeBatches(ID, sample())), other, RAM)), /another translator/);
  assert.match(String(unwrap(wrap(encodeBatches(ID, sample())), ID, 0x3000)), /out of range/);
  assert.equal(payloadOf(Buffer.from('not a cache file at all, but long enough to have a header')), 'not a translation cache file');
});

test('a batch is used only while every guest byte it came from is unchanged', () => {
  const ram = new Uint8Array(0x4000);
  const [b] = sample();
  ram.set(b.blocks[0].bytes, b.blocks[0].lo);
  const w = new WarmStart(0x100000, ram, ID);
  const primed: number[] = [];
  w.load([b], (hpc) => primed.push(hpc));
  assert.deepEqual(primed, [0x100000 + 0x1000], 'the translated head is primed, the untranslatable one is not');
  assert.equal(w.batchOf(0xffffffff80001000n, 0x101000), b);
  assert.equal(w.sameCode(b), true);
  ram[b.blocks[0].lo + 39] ^= 1; // the last byte the block was translated from
  assert.equal(w.sameCode(b), false);
  ram[b.blocks[0].lo + 39] ^= 1;
  ram[b.blocks[0].lo + 40] ^= 1; // the byte after it does not matter
  assert.equal(w.sameCode(b), true);
  // Put back once: then never offered again, and another batch on its slots is refused.
  w.take(b);
  assert.equal(w.batchOf(0xffffffff80001000n, 0x101000), undefined);
  assert.equal(w.claim(b), true);
  assert.equal(w.claim({ ...b, slot: 17, link: 5, links: [] }), false);
  assert.equal(w.claim({ ...b, slot: 100, link: 1 }), false, 'overlapping link slots');
  assert.equal(w.claim({ ...b, slot: 100, link: 3 }), true);
});

test('the cache key follows the guest and the translator build; --jit-cache and TSVISOR_JIT_CACHE decide whether it is used', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-jitkey-'));
  try {
    const k = join(dir, 'Image');
    writeFileSync(k, 'kernel');
    const g = { kernel: k, append: 'console=ttyS0', memMiB: 512 };
    assert.equal(cacheKey(g, ID), cacheKey({ ...g }, ID));
    assert.notEqual(cacheKey(g, ID), cacheKey({ ...g, memMiB: 256 }, ID));
    assert.notEqual(cacheKey(g, ID), cacheKey({ ...g, append: 'console=ttyS0 quiet' }, ID));
    assert.notEqual(cacheKey(g, ID), cacheKey(g, new Uint8Array(ID).map((v) => v ^ 1)));
    assert.equal(jitCacheWanted(undefined, {}), false, 'off by default');
    assert.equal(jitCacheWanted(true, {}), true);
    assert.equal(jitCacheWanted(undefined, { TSVISOR_JIT_CACHE: 'on' }), true);
    assert.equal(jitCacheWanted(false, { TSVISOR_JIT_CACHE: 'on' }), false);
    assert.equal(jitCacheWanted(true, { TSVISOR_JIT_CACHE: 'off' }), false, 'the environment turns it off for every VM');
    assert.equal(jitCacheDir({ TSVISOR_JIT_CACHE_DIR: dir }), dir);
    assert.equal(readdirSync(dir).length, 1);
    assert.equal(readFileSync(k, 'utf8'), 'kernel');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--jit-cache takes on or off and nothing else', () => {
  assert.equal((parseRunArgs([]) as RunOptions).jitCache, undefined);
  assert.equal((parseRunArgs(['--jit-cache', 'on']) as RunOptions).jitCache, true);
  assert.equal((parseRunArgs(['--jit-cache', 'off']) as RunOptions).jitCache, false);
  assert.throws(() => parseRunArgs(['--jit-cache', 'yes']), /invalid --jit-cache 'yes': expected on or off/);
});
