// The daemon's console log queue and replay ring, on real files.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConsoleLog } from '../src/host/console-log.js';
import { ByteRing } from '../src/host/byte-ring.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'tsvisor-conlog-'));
}

test('a guest faster than the disk: chunks beyond the queue are dropped and counted, never blocking', async () => {
  const dir = tempDir();
  try {
    const errors: string[] = [];
    const log = new ConsoleLog(join(dir, 'vm.log'), 1 << 30, (m) => errors.push(m), 8192);
    log.open();
    const chunk = Buffer.alloc(1000, 0x41);
    // All in one turn of the event loop: the first write cannot have finished.
    for (let i = 0; i < 100; i++) log.write(chunk);
    assert.ok(log.droppedBytes > 0, 'some chunks were dropped');
    assert.ok(log.pendingBytes <= 8192, `queue bounded: ${log.pendingBytes} bytes`);
    await log.close();
    assert.deepEqual(errors, []);
    assert.equal(log.writtenBytes + log.droppedBytes, 100_000, 'every byte is either written or counted as dropped');
    assert.equal(statSync(join(dir, 'vm.log')).size, log.writtenBytes);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the log stays bounded: past the limit it becomes NAME.log.1', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'vm.log');
    const log = new ConsoleLog(path, 10_000, () => {});
    log.open();
    for (let i = 0; i < 50; i++) {
      log.write(Buffer.alloc(1000, 0x30 + (i % 10)));
      await new Promise((r) => setImmediate(r));
    }
    await log.close();
    assert.ok(existsSync(`${path}.1`), 'rotated');
    assert.ok(statSync(path).size <= 10_000 && statSync(`${path}.1`).size <= 10_000);
    const tail = readFileSync(path);
    assert.equal(tail[tail.length - 1], 0x30 + (49 % 10), 'the newest bytes are at the end');
    assert.equal(log.droppedBytes, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a log whose directory is gone reports the error and counts the bytes as dropped', async () => {
  const dir = tempDir();
  rmSync(dir, { recursive: true });
  const errors: string[] = [];
  const log = new ConsoleLog(join(dir, 'vm.log'), 10_000, (m) => errors.push(m));
  log.open();
  log.write(Buffer.from('hello'));
  await log.close();
  assert.equal(log.droppedBytes, 5);
  assert.match(errors[0] ?? '', /console log write failed: .*ENOENT/);
});

test('the replay ring keeps the last bytes in order', () => {
  const r = new ByteRing(8);
  r.push(Buffer.from('abc'));
  assert.equal(r.snapshot().toString(), 'abc');
  r.push(Buffer.from('defgh'));
  assert.equal(r.snapshot().toString(), 'abcdefgh');
  r.push(Buffer.from('ij'));
  assert.equal(r.snapshot().toString(), 'cdefghij');
  r.push(Buffer.from('0123456789xyz'));
  assert.equal(r.snapshot().toString(), '56789xyz');
  assert.equal(r.length, 8);
});
