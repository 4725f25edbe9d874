import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Plic, PLIC_CONTEXT_BASE, PLIC_ENABLE_BASE, PLIC_PENDING_BASE } from '../src/devices/plic.js';

function setup(harts = 1) {
  const changes: [number, boolean][] = [];
  const plic = new Plic({ harts, onContextChange: (c, l) => changes.push([c, l]) });
  const r = (off: number) => plic.read(off, 4);
  const w = (off: number, v: number) => plic.write(off, 4, v);
  const prio = (src: number, p: number) => w(4 * src, p);
  const enable = (ctx: number, word: number, bits: number) => w(PLIC_ENABLE_BASE + 0x80 * ctx + 4 * word, bits);
  const threshold = (ctx: number, t: number) => w(PLIC_CONTEXT_BASE + 0x1000 * ctx, t);
  const claim = (ctx: number) => r(PLIC_CONTEXT_BASE + 0x1000 * ctx + 4);
  const complete = (ctx: number, src: number) => w(PLIC_CONTEXT_BASE + 0x1000 * ctx + 4, src);
  return { plic, changes, r, w, prio, enable, threshold, claim, complete };
}

test('registers read back; priorities are 3 bits; source 0 is fixed', () => {
  const p = setup();
  p.prio(10, 5);
  p.prio(11, 0xff);
  p.prio(0, 3);
  assert.equal(p.r(40), 5);
  assert.equal(p.r(44), 7);
  assert.equal(p.r(0), 0);
  p.enable(1, 0, 0xffff_ffff);
  assert.equal(p.r(PLIC_ENABLE_BASE + 0x80), 0xffff_fffe, 'source 0 cannot be enabled');
  p.enable(1, 2, 0xffff_ffff);
  assert.equal(p.r(PLIC_ENABLE_BASE + 0x80 + 8), 0xffff_ffff);
  p.threshold(1, 3);
  assert.equal(p.r(PLIC_CONTEXT_BASE + 0x1000), 3);
  assert.equal(p.r(PLIC_CONTEXT_BASE + 0x2000), 0, 'no context 2 with one hart');
});

test('a level source claims, completes, and re-pends while still high', () => {
  const p = setup();
  p.prio(10, 1);
  p.enable(1, 0, 1 << 10);
  p.plic.setIrq(10, true);
  assert.equal(p.r(PLIC_PENDING_BASE) >>> 0, 1 << 10);
  assert.deepEqual(p.changes, [[1, true]]);
  assert.equal(p.plic.contextLevel(0), false, 'M context has nothing enabled');
  assert.equal(p.claim(1), 10);
  assert.equal(p.r(PLIC_PENDING_BASE), 0, 'claim clears pending');
  assert.equal(p.plic.contextLevel(1), false);
  assert.equal(p.claim(1), 0, 'nothing left to claim');
  p.complete(1, 10);
  assert.equal(p.plic.contextLevel(1), true, 'line still high: pending again');
  assert.equal(p.claim(1), 10);
  p.plic.setIrq(10, false);
  p.complete(1, 10);
  assert.equal(p.plic.contextLevel(1), false);
  assert.equal(p.r(PLIC_PENDING_BASE), 0);
});

test('a source that drops before being claimed is no longer pending', () => {
  const p = setup();
  p.prio(3, 1);
  p.enable(1, 0, 1 << 3);
  p.plic.setIrq(3, true);
  p.plic.setIrq(3, false);
  assert.equal(p.claim(1), 0);
  assert.equal(p.plic.contextLevel(1), false);
});

test('highest priority wins, ties go to the lowest id, priority 0 never interrupts', () => {
  const p = setup();
  p.enable(1, 0, (1 << 1) | (1 << 2) | (1 << 5) | (1 << 6));
  p.prio(1, 0);
  p.prio(2, 2);
  p.prio(5, 4);
  p.prio(6, 4);
  for (const s of [1, 2, 5, 6]) p.plic.setIrq(s, true);
  assert.equal(p.claim(1), 5);
  assert.equal(p.claim(1), 6);
  assert.equal(p.claim(1), 2);
  assert.equal(p.claim(1), 0, 'priority 0 is never delivered');
});

test('threshold masks sources at or below it', () => {
  const p = setup();
  p.enable(1, 1, 1 << (40 - 32));
  p.prio(40, 3);
  p.plic.setIrq(40, true);
  assert.equal(p.plic.contextLevel(1), true);
  p.threshold(1, 3);
  assert.equal(p.plic.contextLevel(1), false);
  assert.equal(p.claim(1), 0);
  p.threshold(1, 2);
  assert.equal(p.plic.contextLevel(1), true);
  assert.equal(p.claim(1), 40);
});

test('completion is ignored for a source not enabled in that context', () => {
  const p = setup();
  p.prio(10, 1);
  p.enable(1, 0, 1 << 10);
  p.plic.setIrq(10, true);
  assert.equal(p.claim(1), 10);
  p.complete(0, 10); // M context: not enabled there
  assert.equal(p.plic.contextLevel(1), false, 'still in service');
  p.complete(1, 10);
  assert.equal(p.plic.contextLevel(1), true);
});

test('contexts are independent and follow the hart/mode numbering', () => {
  const p = setup(2);
  assert.equal(p.plic.numContexts, 4);
  p.prio(7, 1);
  p.enable(3, 0, 1 << 7); // hart 1, S-mode
  p.plic.setIrq(7, true);
  assert.deepEqual(p.changes, [[3, true]]);
  assert.equal(p.claim(2), 0);
  assert.equal(p.claim(3), 7);
  assert.deepEqual(p.changes, [[3, true], [3, false]]);
});

test('out-of-range sources and accesses are ignored', () => {
  const p = setup();
  p.plic.setIrq(0, true);
  p.plic.setIrq(96, true);
  p.plic.setIrq(-1, true);
  assert.equal(p.r(PLIC_PENDING_BASE), 0);
  assert.equal(p.r(0x3f_fffc), 0);
  p.w(0x5f_fff0, 1);
  p.complete(1, 500);
  assert.deepEqual(p.changes, []);
});

test('save/restore round-trips including in-service sources', () => {
  const a = setup();
  a.prio(10, 2);
  a.prio(20, 1);
  a.enable(1, 0, (1 << 10) | (1 << 20));
  a.plic.setIrq(10, true);
  a.plic.setIrq(20, true);
  assert.equal(a.claim(1), 10);
  const saved = JSON.parse(JSON.stringify(a.plic.save()));
  const b = setup();
  assert.deepEqual(b.plic.restore(saved), { ok: true });
  assert.deepEqual(b.plic.save(), a.plic.save());
  assert.equal(b.plic.contextLevel(1), true);
  assert.equal(b.claim(1), 20);
  b.complete(1, 10);
  assert.equal(b.claim(1), 10, 'the restored in-service source re-pends on completion');

  const c = setup();
  const before = c.plic.save();
  for (const bad of [undefined, [], { ...saved, priority: [1, 2] }, { ...saved, enable: [saved.enable[0]] }, { ...saved, threshold: [0, 9] }]) {
    const r = c.plic.restore(bad);
    assert.equal(r.ok, false);
  }
  assert.deepEqual(c.plic.save(), before);
});
