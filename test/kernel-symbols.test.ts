// The panic address comes from a System.map only when the map belongs to the
// kernel: checked on the default guest's real kernel and map, a map from
// another build (symbols shifted), Debian's stub map, and a map for another
// kernel file. Also the stall watch's rule on its own.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { panicSymbolsFor, parseSystemMap, systemMapCandidates } from '../src/machine/kernel-symbols.js';
import { StallWatch } from '../src/vm/stall-watch.js';
import { ensureDefaultGuest } from '../src/image/default-guest.js';

test('the default guest: panic() found in its System.map and checked against its kernel', async (t) => {
  const g = await ensureDefaultGuest({ progress: false, log: () => {} });
  if (!g.systemMap) return t.skip('the default guest has no System.map (it could not be fetched)');
  const map = readFileSync(g.systemMap, 'latin1');
  const kernel = new Uint8Array(readFileSync(g.kernel));
  const r = panicSymbolsFor(map, kernel);
  assert.ok(r.ok, r.ok ? '' : r.error);
  const direct = parseSystemMap(map, ['panic']).get('panic');
  assert.equal(r.symbols.panic, direct);
  // Not relocatable: a kernel-half address in the kernel's text.
  assert.ok(r.symbols.panic >= 0xffffffff80000000n);

  // The same map shifted by 4 KiB (another build) no longer fits the banner.
  const shifted = map.replace(/^([0-9a-f]{16})( [A-Za-z] linux_banner)$/m, (_m, a: string, rest: string) => (BigInt(`0x${a}`) + 0x1000n).toString(16).padStart(16, '0') + rest);
  assert.notEqual(shifted, map);
  const bad = panicSymbolsFor(shifted, kernel);
  assert.equal(bad.ok, false);
  assert.match(bad.ok ? '' : bad.error, /does not belong to this kernel/);

  // Debian's stub map in the linux-image package.
  const stub = panicSymbolsFor('ffffffffffffffff B The real System.map is in the linux-image-<version>-dbg package\n', kernel);
  assert.equal(stub.ok, false);
  assert.match(stub.ok ? '' : stub.error, /lacks panic/);

  // The right map for another kernel file (the busybox binary is no kernel at all).
  const other = panicSymbolsFor(map, new Uint8Array(readFileSync(g.initrd)));
  assert.equal(other.ok, false);
});

test('System.map is looked for next to the kernel', () => {
  assert.deepEqual(systemMapCandidates('/boot/vmlinux-6.12.1-riscv64'), ['/boot/System.map-6.12.1-riscv64', '/boot/System.map']);
  assert.deepEqual(systemMapCandidates('/img/Image'), ['/img/System.map']);
});

test('stall watch: fails a guest with no user trap and no WFI only after the timeout and enough instructions', () => {
  const w = new StallWatch(5000);
  let instret = 0n;
  const step = (traps: bigint, wfi: boolean, ms: number, insns: bigint) => {
    instret += insns;
    return w.update(traps, 1n, instret, wfi, ms);
  };
  assert.equal(step(0n, false, 0, 0n), null, 'the first call only takes the counts');
  // Booting (no program has run): a long kernel-only stretch is not a stall until 4x the timeout and 5e9 instructions.
  for (let i = 0; i < 19; i++) assert.equal(step(0n, false, 1000, 300_000_000n), null, `boot second ${i}`);
  assert.match(step(0n, false, 1000, 300_000_000n) ?? '', /^hung: /);

  const w2 = new StallWatch(5000);
  instret = 0n;
  const step2 = (traps: bigint, wfi: boolean, ms: number, insns: bigint) => {
    instret += insns;
    return w2.update(traps, 1n, instret, wfi, ms);
  };
  step2(10n, false, 1000, 100_000_000n);
  // Programs trap and the kernel idles: never a stall however long.
  for (let i = 0; i < 100; i++) assert.equal(step2(11n + BigInt(i), false, 1000, 300_000_000n), null);
  for (let i = 0; i < 100; i++) assert.equal(step2(200n, true, 1000, 300_000_000n), null);
  // A slow host: the time passes but too few instructions run.
  for (let i = 0; i < 20; i++) assert.equal(step2(200n, false, 1000, 10_000_000n), null, `slow second ${i}`);
  // A program traps again, then the kernel stops: after 5 s and 1e9 instructions it is hung.
  assert.equal(step2(201n, false, 1000, 300_000_000n), null);
  for (let i = 0; i < 4; i++) assert.equal(step2(201n, false, 1000, 300_000_000n), null);
  assert.match(step2(201n, false, 1000, 300_000_000n) ?? '', /^hung: no program ran and the CPU never idled for 5 s/);
  // A guest that never took an interrupt (a bare-metal program computing) is never failed.
  const bare = new StallWatch(5000);
  for (let i = 1; i <= 1000; i++) assert.equal(bare.update(0n, 0n, BigInt(i) * 1_000_000_000n, false, 1000), null);
  // Off.
  const off = new StallWatch(0);
  assert.equal(off.update(0n, 1n, 10n ** 12n, false, 1e9), null);
});
