#!/usr/bin/env node
// Entry point installed as `tsvisor`: runs the compiled CLI (npm run build first).
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
