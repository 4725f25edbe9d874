// Child processes of a benchmark: every child is tracked, and all of them are
// killed (SIGKILL) when the benchmark exits or is interrupted, so no emulator
// outlives the run.

import type { ChildProcess } from 'node:child_process';

const live = new Set<ChildProcess>();
let installed = false;

/** Kill every tracked child that is still running. */
export function killAll(): void {
  for (const c of live) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      killAll();
      process.exit(130);
    });
  }
}

/** Track `child` until it closes; installs the exit and signal handlers on first use. */
export function track(child: ChildProcess): ChildProcess {
  install();
  live.add(child);
  child.on('close', () => live.delete(child));
  return child;
}
