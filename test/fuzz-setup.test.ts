// The Jazzer.js compatibility step: the copy of the prebuilt libFuzzer addon has
// its GLIBC_2.38 and GLIBCXX_3.4.32 needs marked weak, as readelf (binutils) reads
// them, and nothing else in the file changes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { weakenVersionNeeds } from '../fuzz/lib/jazzer-setup.js';

const require = createRequire(import.meta.url);

test('weakenVersionNeeds marks only the newer glibc/libstdc++ versions weak', (t) => {
  if (process.platform !== 'linux' || process.arch !== 'x64') return t.skip('the Linux x64 prebuilt is the one patched');
  if (spawnSync('readelf', ['--version']).status !== 0) return t.skip('readelf (binutils) is not installed');
  const addon = join(dirname(require.resolve('@jazzer.js/fuzzer/package.json')), 'prebuilds', 'fuzzer-linux-x64.node');
  const original = readFileSync(addon);
  const { out, weakened } = weakenVersionNeeds(original);
  assert.deepEqual([...weakened].sort(), ['GLIBCXX_3.4.32', 'GLIBC_2.38']);
  let changed = 0;
  for (let i = 0; i < out.length; i++) if (out[i] !== original[i]) changed++;
  assert.equal(changed, 2, 'one flag byte per weakened entry');
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-fuzz-setup-'));
  try {
    const p = join(dir, 'addon.node');
    writeFileSync(p, out);
    const v = spawnSync('readelf', ['-V', p], { encoding: 'utf8' }).stdout;
    assert.match(v, /Name: GLIBC_2\.38\s+Flags: WEAK/);
    assert.match(v, /Name: GLIBCXX_3\.4\.32\s+Flags: WEAK/);
    assert.match(v, /Name: GLIBC_2\.34\s+Flags: none/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('weakenVersionNeeds refuses a file that is not ELF64', () => {
  assert.throws(() => weakenVersionNeeds(new Uint8Array(64)), /not an ELF64/);
});
