import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as layout from '../src/machine/layout.js';
import { LAYOUT_NAMES } from '../src/machine/layout.generated.js';
import { CpuCore } from '../src/machine/cpu-core.js';
import { MAX_MEM_MIB } from '../src/common/size.js';

const wasm = new Uint8Array(readFileSync(new URL('../../build/cpu.wasm', import.meta.url)));

test('the host sees every layout constant of src/cpu/layout.ts', () => {
  // Parsed here independently of the generator: a name it dropped would show.
  const src = readFileSync(fileURLToPath(new URL('../../src/cpu/layout.ts', import.meta.url)), 'utf8');
  const declared = [...src.matchAll(/^export const (\w+)/gm)].map((m) => m[1]);
  assert.ok(declared.length >= 30, `src/cpu/layout.ts declares ${declared.length} constants`);
  assert.deepEqual([...LAYOUT_NAMES], declared);
  for (const name of declared) {
    assert.equal(typeof (layout as Record<string, unknown>)[name!], 'number', `layout.ts exports ${name}`);
  }
});

test('each layout constant the host uses equals the compiled core\'s', () => {
  const core = new CpuCore(wasm, 16 << 20, { mmioRead: () => 0, mmioWrite: () => {}, ecall: () => {} });
  const exports = core.exports as unknown as Record<string, { value?: unknown } | undefined>;
  for (const name of LAYOUT_NAMES) {
    const g = exports[name];
    assert.ok(g !== undefined && 'value' in g, `build/cpu.wasm exports ${name} as a global (rebuild with npm run build)`);
    assert.equal(g.value, layout[name], `${name}: host ${layout[name]}, core ${String(g.value)}`);
  }
});

test('the hart state fields fit the state block without overlapping', () => {
  const L = layout;
  // [name, offset, bytes]: the widths the core and the translator access.
  const fields: [string, number, number][] = [
    ['x', L.X_OFF, 32 * 8], ['f', L.F_OFF, 32 * 8], ['pc', L.PC_OFF, 8], ['fflags', L.FFLAGS_OFF, 4], ['frm', L.FRM_OFF, 4],
    ['mmio fault', L.MMIO_FAULT_OFF, 4], ['trap counts', L.TRAP_COUNTS_OFF, 2 * L.TRAP_COUNTS_INT_OFF], ['last trap', L.LAST_TRAP_OFF, 24],
    ['tlb bases', L.TLB_BASES_OFF, 12], ['jit flag', L.JIT_FLAG_OFF, 4], ['jit done', L.JIT_DONE_OFF, 4], ['jit budget', L.JIT_BUDGET_OFF, 4],
    ['jit epoch', L.JIT_EPOCH_OFF, 4], ['jit user epoch', L.JIT_USER_EPOCH_OFF, 4], ['jit last exit', L.JIT_LAST_EXIT_OFF, 4], ['jit urgent', L.JIT_URGENT_OFF, 4], ['fs dirty', L.FS_DIRTY_OFF, 4],
    ['tlb tags', L.TLB_TAGS_OFF, 16], ['link pages', L.LINK_PAGES_OFF, 2 * (L.LINK_PAGES_BITS / 8)], ['asid table', L.ASID_TABLE_OFF, 16 * L.ASID_COUNT],
    ['walk counts', L.WALK_COUNTS_OFF, 24], ['lookup counts', L.LOOKUP_COUNTS_OFF, 16], ['sys counts', L.SYS_COUNTS_OFF, 8 * L.SYS_COUNTS_N], ['jit queue', L.JIT_QUEUE_OFF, 16 + 16 * L.JIT_QUEUE_MAX],
    ['fence word', L.FENCE_WORD_OFF, 4], ['jump cache base', L.JIT_JCACHE_BASE_OFF, 4], ['jump cache', L.JIT_JCACHE_OFF, 4 * 16 * L.JIT_JCACHE_ENTRIES],
    ['hart attention', L.HART_ATTN_OFF, 4], ['pmp', L.PMP_OFF, 16 + 3 * 16 * 8], ['triggers', L.TRIG_OFF, 2 * 4 * 8],
  ];
  assertDisjoint(fields, 0, L.STATE_SIZE);
  // Translated code reads fflags and frm as one i64.
  assert.equal(L.FRM_OFF, L.FFLAGS_OFF + 4, 'frm follows fflags');
});

test('the tables below guest RAM do not overlap, even with the largest guest', () => {
  const L = layout;
  for (const [name, n] of [['TLB_SIZE', L.TLB_SIZE], ['JIT_HOT_SIZE', L.JIT_HOT_SIZE], ['JIT_HASH_SIZE', L.JIT_HASH_SIZE]] as const) {
    assert.equal(n & (n - 1), 0, `${name} is a power of two (it is used as a mask)`);
  }
  const maxPages = (MAX_MEM_MIB << 20) / 4096;
  const regions: [string, number, number][] = [
    ['state', L.STATE, L.STATE_SIZE], ['tlb', L.TLB_BASE, 3 * 4 * L.TLB_SIZE * 16], ['rvc table', L.RVC_TABLE, 0x10000 * 4],
    ['debug breakpoints', L.DEBUG_BP, L.DEBUG_BP_MAX * 8],
    ['hart contexts', L.HART_CTX, L.HART_CTX_MAX * L.HART_CTX_SIZE],
    ['hot counts', L.JIT_HOT, L.JIT_HOT_SIZE * 8], ['page generations', L.PAGE_GEN, maxPages * 4], ['code pages', L.CODE_PAGE, maxPages],
    ['block cache', L.JIT_HASH, L.JIT_HASH_SIZE * 32], ['link slots', L.JIT_LINKS, L.JIT_LINKS_MAX * 32], ['dirty pages', L.DIRTY_PAGE, maxPages],
  ];
  // Harts 1.. have their own copy of the per-hart tables, HART_STRIDE apart (phase 2).
  const perHart = new Set(['state', 'tlb', 'hot counts', 'block cache', 'link slots']);
  const copies: [string, number, number][] = [];
  for (let h = 1; h < L.HART_AREAS_MAX; h++) {
    for (const [name, at, bytes] of regions) if (perHart.has(name)) copies.push([`hart ${h} ${name}`, at + h * L.HART_STRIDE, bytes]);
  }
  assertDisjoint([...regions, ...copies], 0, L.RAM_HOST);
});

function assertDisjoint(spans: [string, number, number][], lo: number, hi: number): void {
  const sorted = [...spans].sort((a, b) => a[1] - b[1]);
  let end = lo;
  let prev = 'start';
  for (const [name, at, bytes] of sorted) {
    assert.ok(at >= end, `${name} at 0x${at.toString(16)} overlaps ${prev} (ends at 0x${end.toString(16)})`);
    end = at + bytes;
    prev = name;
  }
  assert.ok(end <= hi, `${prev} ends at 0x${end.toString(16)}, past 0x${hi.toString(16)}`);
}

test('virtio slots and IRQs follow the virt board', () => {
  assert.equal(layout.virtioMmioBase(0), 0x10001000);
  assert.equal(layout.virtioMmioBase(7), 0x10008000);
  assert.equal(layout.virtioMmioIrq(0), 1);
  assert.equal(layout.virtioMmioIrq(7), 8);
  assert.ok(layout.virtioMmioBase(layout.VIRTIO_MMIO_SLOTS) <= 0x10100000);
  assert.equal(layout.PLIC_NDEV, 95);
});
