import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as layout from '../src/machine/layout.js';

test('layout mirrors the hart-state offsets of src/cpu/state.ts', () => {
  const src = readFileSync(fileURLToPath(new URL('../../src/cpu/state.ts', import.meta.url)), 'utf8');
  const names = ['STATE', 'X_OFF', 'F_OFF', 'PC_OFF', 'FFLAGS_OFF', 'FRM_OFF', 'TLB_BASE', 'TLB_SIZE', 'RAM_HOST'] as const;
  for (const name of names) {
    const m = new RegExp(`export const ${name}: u32 = (0x[0-9a-fA-F_]+|[0-9_]+);`).exec(src);
    assert.ok(m, `${name} is defined in state.ts`);
    assert.equal(layout[name], Number(m[1]!.replace(/_/g, '')), name);
  }
});

test('virtio slots and IRQs follow the virt board', () => {
  assert.equal(layout.virtioMmioBase(0), 0x10001000);
  assert.equal(layout.virtioMmioBase(7), 0x10008000);
  assert.equal(layout.virtioMmioIrq(0), 1);
  assert.equal(layout.virtioMmioIrq(7), 8);
  assert.ok(layout.virtioMmioBase(layout.VIRTIO_MMIO_SLOTS) <= 0x10100000);
  assert.equal(layout.PLIC_NDEV, 95);
});
