#!/usr/bin/env node
// Entry point installed as `tsvisor`: runs the compiled CLI (npm run build first).
import { createRequire } from 'node:module';

// `tsvisor run` is one VM: glibc would give the VM thread and each of V8's
// compiler and GC threads a malloc arena of its own, and freed compiler memory
// scattered over five or six arenas kept about 35 MiB resident in an idle VM.
// Two shared arenas (set before the VM thread and most of V8's threads first
// allocate) keep it in few places, where the worker's malloc_trim returns it;
// one arena saved no more and made boots slower (lock contention).
// TSVISOR_MALLOC_ARENAS overrides the count (0: glibc's default).
if (process.argv[2] === 'run') {
  const arenas = Number(process.env.TSVISOR_MALLOC_ARENAS ?? 2);
  if (Number.isInteger(arenas) && arenas > 0) {
    try {
      createRequire(import.meta.url)('../build/guest-memory.node').arenaMax(arenas);
    } catch {
      // no addon (or an old one): glibc's default arenas
    }
  }
}
let cli;
try {
  cli = await import('../dist/src/cli/main.js');
} catch (e) {
  if (e && e.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes('dist/src/cli/main.js')) {
    process.stderr.write("tsvisor: not built yet; run 'npm run build' first\n");
  } else {
    process.stderr.write(`tsvisor: cannot load the CLI: ${String(e && e.message ? e.message : e).split('\n')[0]}\n`);
    if (process.env.TSVISOR_DEBUG === '1' && e && e.stack) process.stderr.write(`${e.stack}\n`);
  }
  process.exit(1);
}
const code = await cli.main(process.argv.slice(2));
// Let anything still queued on stdout/stderr drain, then leave even if stdin is still open.
process.exitCode = code;
process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
