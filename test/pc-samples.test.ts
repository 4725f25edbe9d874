// The --stats hot spots: pcs weighted by instructions, named by a System.map.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PcSamples } from '../src/vm/pc-samples.js';
import { TextSymbols } from '../src/machine/kernel-symbols.js';

const MAP = [
  'ffffffff80000000 T _start',
  'ffffffff80001000 t memset',
  'ffffffff80001100 D some_data',
  'ffffffff80002000 T memcpy',
  'ffffffff80003000 W weak_fn',
  'not a line',
].join('\n');

test('TextSymbols names a pc by the text symbol at or below it, and nothing outside the text', () => {
  const s = new TextSymbols(MAP);
  assert.equal(s.size, 4); // the data symbol and the bad line are left out
  assert.equal(s.name(0xffffffff80001000n), 'memset');
  assert.equal(s.name(0xffffffff80001180n), 'memset'); // past a data symbol: still memset's text
  assert.equal(s.name(0xffffffff80002ffen), 'memcpy');
  assert.equal(s.name(0xffffffff80003010n), 'weak_fn');
  assert.equal(s.name(0x10000n), null); // user code
  assert.equal(s.name(0xffffffff7fff0000n), null); // below the kernel (modules)
  assert.equal(s.name(0xffffffff90000000n), null); // far past the last symbol
});

test('PcSamples weighs names by instructions and keeps its table bounded', () => {
  const s = new TextSymbols(MAP);
  const p = new PcSamples();
  p.add(0xffffffff80001004n, 300);
  p.add(0xffffffff80001040n, 300); // another bucket of memset
  p.add(0xffffffff80002000n, 200);
  p.add(0x10080n, 200); // user
  p.add(0xffffffff80002000n, 0); // an empty slice counts nothing
  assert.equal(p.top((pc) => s.name(pc), 3), 'memset 60.0%, memcpy 20.0%, user 20.0%');
  assert.equal(p.top((pc) => s.name(pc), 1), 'memset 60.0%');
  assert.equal(new PcSamples().top(() => null, 5), 'none');

  const many = new PcSamples();
  for (let i = 0; i < 70_000; i++) many.add(BigInt(i) << 4n, 1);
  assert.match(many.top(() => 'f', 2), /^f 93\.6%, other 6\.4%$/);
});
