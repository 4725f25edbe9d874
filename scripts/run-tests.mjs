#!/usr/bin/env node
// Runs exactly the compiled test files: one dist/test/NAME.test.js for each
// test/NAME.test.ts. An explicit list, because `node --test DIR` means different
// things across Node versions (Node 20 also runs helper and fixture modules and
// counts them as passing tests; Node 22 and later treat the argument as a glob).
// Usage: node scripts/run-tests.mjs [--list] [NAME...]   (NAME: "qcow2" or "qcow2.test")
//   --list  prints the files it would run, one per line, and runs nothing
import { readdirSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const names = readdirSync(join(root, 'test'))
  .filter((f) => f.endsWith('.test.ts'))
  .map((f) => f.slice(0, -'.test.ts'.length))
  .sort();
const args = process.argv.slice(2);
const listOnly = args[0] === '--list';
if (listOnly) args.shift();
const wanted = args.map((a) => a.replace(/\.test(\.[jt]s)?$/, ''));
const unknown = wanted.filter((w) => !names.includes(w));
if (unknown.length) {
  console.error(`run-tests: no test/${unknown[0]}.test.ts (known: ${names.join(', ')})`);
  process.exit(2);
}
const files = (wanted.length ? wanted : names).map((n) => join('dist', 'test', `${n}.test.js`));
const missing = files.filter((f) => !existsSync(join(root, f)));
if (missing.length) {
  console.error(`run-tests: ${missing[0]} is not built; run \`npm run build\` first`);
  process.exit(2);
}
if (listOnly) {
  console.log(files.join('\n'));
  process.exit(0);
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...files], { cwd: root, stdio: 'inherit' });
if (r.error) {
  console.error(`run-tests: cannot start node: ${r.error.message}`);
  process.exit(1);
}
process.exit(r.status ?? 1);
