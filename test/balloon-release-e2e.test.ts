// End to end: guest pages given back through virtio-balloon leave the host.
// A deterministic guest fills 96 MiB of its RAM-backed root with a file, so the
// host backs that memory; it deletes the file, Linux's free page reporting hands
// the free ranges to the balloon, and the device releases them with
// madvise(MADV_DONTNEED) (build/guest-memory.node). The host's own count of
// resident guest RAM (mincore) must drop, a file the guest keeps must read back
// unchanged, and memory the guest uses again must work. Then the balloon is
// inflated on the running VM and the inflated pages are released as well.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { bootDefaultGuest } from './lib/vm-console.js';
import { hostMemory, hostMemoryUnavailableReason } from '../src/vm/host-memory.js';
import { budget } from './lib/budget.js';

const MIB = 1024 * 1024;
// The project's TypeScript lib has no DOM types; this is the one WebAssembly call the test makes.
declare const WebAssembly: { Memory: new (d: { initial: number; maximum: number }) => { buffer: ArrayBuffer } };

test('host memory addon: release zeroes and un-backs pages, resident counts them, bad ranges throw', (t) => {
  const hm = hostMemory();
  if (!hm) return t.skip(hostMemoryUnavailableReason());
  const mem = new WebAssembly.Memory({ initial: 512, maximum: 512 }); // 32 MiB
  const ram = new Uint8Array(mem.buffer, 65536, 16 * MIB);
  assert.equal(hm.resident(ram), 0, 'a fresh memory is not backed');
  ram.fill(7);
  assert.equal(hm.resident(ram), 16 * MIB);
  // An unaligned range: whole pages are released, the edges are zeroed by hand.
  const freed = hm.release(ram, 4096 + 100, 8 * MIB);
  assert.ok(freed >= 8 * MIB - 8192, `released ${freed}`);
  assert.equal(ram[4096 + 99], 7, 'byte before the range kept');
  assert.equal(ram[4096 + 100], 0);
  assert.equal(ram[4096 + 100 + 8 * MIB - 1], 0);
  assert.equal(ram[4096 + 100 + 8 * MIB], 7, 'byte after the range kept');
  assert.ok(hm.resident(ram) <= 8 * MIB + 8192, `resident ${hm.resident(ram)}`);
  assert.equal(hm.release(ram, 0, 0), 0);
  assert.equal(hm.release(ram, -1, 10), 0, 'out of range: nothing happens');
  assert.equal(hm.release(ram, 0, ram.length + 1), 0);
  assert.equal(ram[0], 7);
});

test('free pages reported by the guest and inflated pages are returned to the host', { timeout: budget(300_000) }, async (t) => {
  if (!hostMemory()) return t.skip(hostMemoryUnavailableReason());
  const con = await bootDefaultGuest({ memMiB: 256, deterministic: true, balloon: { statsIntervalMs: 0 } });
  const vm = con.vm;
  const md5 = (text: string) => /\b[0-9a-f]{32}\b/.exec(text)?.[0] ?? `no md5 in ${JSON.stringify(text)}`;
  const sh = (cmd: string) => con.run(cmd, 150_000);
  /** The worker refreshes its resident count about once a second: wait for a fresh one that satisfies `ok`. */
  const residentWhen = async (what: string, ok: (bytes: number) => boolean, ms = 90_000): Promise<number> => {
    const end = Date.now() + ms;
    for (;;) {
      const r = vm.live().ramResidentBytes;
      if (r >= 0 && ok(r)) return r;
      if (Date.now() > end) throw new Error(`${what}: guest RAM resident ${(r / MIB).toFixed(1)} MiB`);
      await delay(200);
    }
  };
  try {
    const keep = md5(await sh('dd if=/dev/urandom of=/keep bs=1M count=4 2>/dev/null; md5sum /keep'));
    const r0 = await residentWhen('after boot', (r) => r > 0);
    await sh('dd if=/dev/zero of=/big bs=1M count=96 2>/dev/null; sync');
    // (The file may reuse a few pages the boot already touched and freed.)
    const r1 = await residentWhen('after writing 96 MiB', (r) => r >= r0 + 72 * MIB);
    await sh('rm /big');
    // Linux reports free ranges (2 MiB and up) a couple of guest seconds after they appear.
    const r2 = await residentWhen('after deleting the file', (r) => r <= r1 - 64 * MIB);
    const s2 = (await vm.deviceStats()).balloon!;
    t.diagnostic(`resident guest RAM: boot ${(r0 / MIB).toFixed(1)} MiB, with file ${(r1 / MIB).toFixed(1)}, after rm ${(r2 / MIB).toFixed(1)}; ${s2.reports} reports, ${(s2.releasedToHostBytes / MIB).toFixed(1)} MiB released`);
    assert.ok(s2.freePageReporting, 'the guest negotiated free page reporting');
    assert.ok(s2.releasedToHostBytes >= 64 * MIB, `released ${s2.releasedToHostBytes}`);
    // Memory that went back to the host works when the guest uses it again.
    assert.equal(md5(await sh('md5sum /keep')), keep, 'kept file intact');
    const again = await sh('dd if=/dev/zero bs=1M count=64 2>/dev/null | tr "\\0" "x" > /again; tr -d x < /again | wc -c; rm /again');
    assert.match(again, /^\s*0\s*$/m, 'pages reused after release hold what the guest wrote');

    // Inflate: the pages the guest hands over are released too.
    const before = (await vm.deviceStats()).balloon!.releasedToHostBytes;
    await sh('dd if=/dev/zero of=/big bs=1M count=64 2>/dev/null; sync; rm /big'); // back them with memory first
    await vm.setBalloonTarget(64);
    const end = Date.now() + 90_000;
    let s = (await vm.deviceStats()).balloon!;
    while (s.inflatedPages < (64 * MIB) / 4096 && Date.now() < end) {
      await delay(200);
      s = (await vm.deviceStats()).balloon!;
    }
    assert.equal(s.inflatedPages, (64 * MIB) / 4096, 'balloon reached its target');
    t.diagnostic(`after inflating 64 MiB: ${((s.releasedToHostBytes - before) / MIB).toFixed(1)} MiB more released`);
    assert.ok(s.releasedToHostBytes > before, 'inflated pages were released');
    assert.equal(md5(await sh('md5sum /keep')), keep, 'kept file intact after inflating');
  } finally {
    vm.sendInput(Buffer.from('poweroff -f\n'));
    const r = await Promise.race([vm.exited, delay(20_000, null, { ref: false })]);
    if (!r) await vm.stop();
  }
});
