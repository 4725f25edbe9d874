import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatSize, MAX_MEM_MIB, MIN_MEM_MIB, parseMemSize, parseSize, SizeError } from '../src/common/size.js';

const K = 1024;
const M = 1024 * K;
const G = 1024 * M;

test('parseSize: units and plain bytes', () => {
  assert.equal(parseSize('512M'), 512 * M);
  assert.equal(parseSize('1G'), G);
  assert.equal(parseSize('1g'), G);
  assert.equal(parseSize('1048576K'), G);
  assert.equal(parseSize('1048576k'), G);
  assert.equal(parseSize('536870912'), 512 * M);
  assert.equal(parseSize('2T'), 2 * 1024 * G);
  assert.equal(parseSize('100B'), 100);
  assert.equal(parseSize('64MiB'), 64 * M);
  assert.equal(parseSize('64MB'), 64 * M);
  assert.equal(parseSize('64 M'), 64 * M);
  assert.equal(parseSize(' 64M '), 64 * M);
  assert.equal(parseSize('1.5G'), 1536 * M);
  assert.equal(parseSize('.5G'), 512 * M);
});

test('parseSize: rejects what is not a size', () => {
  for (const bad of ['', 'abc', '12Q', 'M', '-1G', '1GG', '1.G', '1e9', '0x100', '1,5G', '1.5', '1 2M', 'MiB', '1iB']) {
    assert.equal(parseSize(bad), null, `'${bad}' should not parse`);
  }
});

test('parseSize: huge numbers do not wrap around', () => {
  assert.equal(parseSize('99999999999999999999G'), Infinity);
  assert.equal(parseSize('9'.repeat(400)), Infinity);
});

test('parseMemSize: returns MiB within limits', () => {
  assert.equal(parseMemSize('512M'), 512);
  assert.equal(parseMemSize('1G'), 1024);
  assert.equal(parseMemSize('1048576K'), 1024);
  assert.equal(parseMemSize(String(256 * M)), 256);
  assert.equal(parseMemSize(`${MIN_MEM_MIB}M`), MIN_MEM_MIB);
  assert.equal(parseMemSize(`${MAX_MEM_MIB}M`), MAX_MEM_MIB);
  assert.equal(parseMemSize('3.5G'), 3584);
});

test('parseMemSize: error messages name the option, the value and the limit', () => {
  assert.throws(() => parseMemSize('12Q'), (e: unknown) => {
    assert.ok(e instanceof SizeError);
    assert.equal(e.message, "invalid --mem '12Q': expected a size like 512M or 1G");
    return true;
  });
  assert.throws(() => parseMemSize('8M'), { message: '--mem 8M is too small (minimum 16M)' });
  assert.throws(() => parseMemSize('1M'), /too small \(minimum 16M\)/);
  assert.throws(() => parseMemSize('0'), /too small/);
  assert.throws(() => parseMemSize(`${MIN_MEM_MIB * M - 1}`), /too small/);
  assert.throws(() => parseMemSize('3585M'), /--mem 3585M is too large \(maximum 3584M/);
  assert.throws(() => parseMemSize('4G'), /too large/);
  assert.throws(() => parseMemSize('99G'), /too large/);
  assert.throws(() => parseMemSize('9'.repeat(400)), /too large/);
  assert.throws(() => parseMemSize('16385K'), /not a whole number of MiB/);
  assert.throws(() => parseMemSize('abc', '--memory'), { message: "invalid --memory 'abc': expected a size like 512M or 1G" });
});

test('formatSize', () => {
  assert.equal(formatSize(512 * M), '512M');
  assert.equal(formatSize(G), '1G');
  assert.equal(formatSize(1536 * M), '1536M');
  assert.equal(formatSize(3 * K), '3K');
  assert.equal(formatSize(100), '100 bytes');
});
