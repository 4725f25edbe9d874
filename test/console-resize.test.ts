// The console WebSocket's resize messages: what counts as one, what is refused,
// and that anything else stays input.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseResize } from '../src/host/console-ws.js';

const b = (s: string) => Buffer.from(s, 'utf8');

test('a resize message gives the size', () => {
  assert.deepEqual(parseResize(b('{"type":"resize","cols":146,"rows":40}')), { cols: 146, rows: 40 });
  assert.deepEqual(parseResize(b('{"rows":1,"type":"resize","cols":65535}')), { cols: 65535, rows: 1 });
});

test('a resize with a size the guest cannot take is refused (never typed)', () => {
  for (const m of ['{"type":"resize","cols":0,"rows":40}', '{"type":"resize","cols":80,"rows":65536}', '{"type":"resize","cols":80.5,"rows":24}', '{"type":"resize","cols":"80","rows":24}', '{"type":"resize"}']) {
    assert.equal(parseResize(b(m)), 'bad', m);
  }
});

test('other text is input, as before', () => {
  for (const m of ['ls -l\n', '{"type":"other"}', '{not json', '[1,2]', 'null', '{"type":"resize","cols":80,"rows":24' + ' '.repeat(300) + '}']) {
    assert.equal(parseResize(b(m)), null, m.slice(0, 40));
  }
});
