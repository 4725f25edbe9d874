// Replays every committed fuzz input, the crash regressions (fuzz/regressions/TARGET)
// and the seed corpus (fuzz/corpus/TARGET), through the same target functions the
// fuzzer runs: each must finish without an exception or a broken invariant.
// No fuzzing engine is involved, so this runs everywhere the tests run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TARGETS } from '../fuzz/targets.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const hasQemuImg = spawnSync('qemu-img', ['--version']).status === 0;

function inputs(kind: 'regressions' | 'corpus', target: string): string[] {
  const dir = join(root, 'fuzz', kind, target);
  return existsSync(dir) ? readdirSync(dir).sort().map((f) => join(dir, f)) : [];
}

test('every fuzz target has a seed corpus', () => {
  for (const t of TARGETS) assert.ok(inputs('corpus', t.name).length > 0, `fuzz/corpus/${t.name} is empty`);
});

for (const t of TARGETS) {
  test(`fuzz target ${t.name}: regressions and corpus replay cleanly`, async (ctx) => {
    if (t.name === 'qcow2-ops' && !hasQemuImg) return ctx.skip('qemu-img is not installed (the target makes its image with it)');
    const mod = (await import(`../fuzz/targets/${t.name}.js`)) as { fuzz(data: Buffer): void | Promise<void> };
    const files = [...inputs('regressions', t.name), ...inputs('corpus', t.name)];
    for (const f of files) {
      try {
        await mod.fuzz(readFileSync(f));
      } catch (e) {
        assert.fail(`${f.slice(root.length + 1)}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      }
    }
  });
}
