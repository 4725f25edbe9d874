// `tsvisor clone SNAPSHOT --count N`: start N clones of a snapshot in the
// background, each a detached `tsvisor run --restore SNAPSHOT --clone` process
// with its own directory (disk overlays, console log, pid file). They outlive
// this command; `kill PID` stops one (as Ctrl-C would).

import { closeSync, existsSync, mkdirSync, openSync, readdirSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseOptions, UsageError, UserError, type MainIo } from './args.js';

/**
 * Node.js and V8 settings for the clones' processes: each is a whole Node.js
 * process, and with the defaults most of its memory beyond the guest pages it
 * wrote was the young generations of its two V8 heaps (up to 16 MiB
 * semi-spaces each), the C heap arenas of V8's compiler threads and the
 * threads themselves. Three idle clones measured 104 MiB each beyond their
 * written pages with the defaults and 77 MiB with these (1 MiB semi-spaces:
 * 81 MiB alone). An idle clone allocates little, so small young generations
 * cost it next to nothing in collections.
 */
export const CLONE_NODE_ARGS = ['--max-semi-space-size=1', '--v8-pool-size=1'];
/** glibc: at most two malloc arenas, not one per compiler thread. */
export const CLONE_ENV = { MALLOC_ARENA_MAX: '2' };

export const CLONE_HELP = `Usage: tsvisor clone SNAPSHOT_DIR [options]

Start clones of a snapshot in the background: each is a detached
'tsvisor run --restore SNAPSHOT_DIR --clone' with a new VM generation ID and
its own disk overlays (see 'tsvisor run --help').

Options:
  --count N          how many clones (1..64, default 1)
  --dir DIR          where the clones' directories go (default: next to the
                     snapshot, SNAPSHOT_DIR-clones); each clone gets DIR/NAME
                     with its overlays, console.log and pid
  --prefix P         clones are named P-1 .. P-N (default: clone)
  -h, --help         show this help

Prints one line per clone: name, pid, directory. Stop a clone with 'kill PID'.

With a daemon: tsvisor clone --daemon SNAPSHOT_NAME --count N [--prefix P]
[--no-start] [--socket PATH | --url URL --token-file FILE] defines N clones of
the daemon's snapshot as daemon VMs (POST /v1/snapshots/NAME/clones) and starts
them; they are then managed like any daemon VM.
`;

const MAX_CLONES = 64;
const CLI = fileURLToPath(new URL('../../../bin/tsvisor.js', import.meta.url));

export async function cloneCommand(args: string[], io: MainIo): Promise<number> {
  if (args.includes('--daemon')) return (await import('./client.js')).daemonCloneCommand(args, io);
  const { values, positionals } = parseOptions('tsvisor clone', args, {
    count: { type: 'string' },
    dir: { type: 'string' },
    prefix: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  }, true);
  if (values.help) {
    io.stdout.write(CLONE_HELP);
    return 0;
  }
  if (positionals.length !== 1 || positionals[0] === '') throw new UsageError('tsvisor clone needs one snapshot directory (try tsvisor clone --help)');
  const countText = values.count ?? '1';
  const count = /^\d+$/.test(countText) ? Number(countText) : NaN;
  if (!Number.isInteger(count) || count < 1 || count > MAX_CLONES) throw new UsageError(`invalid --count '${countText}': 1 to ${MAX_CLONES}`);
  const prefix = values.prefix ?? 'clone';
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,50}$/.test(prefix)) throw new UsageError(`invalid --prefix '${prefix}': letters, digits, '_', '.', '-' (at most 51)`);
  if (values.dir === '') throw new UsageError('--dir needs a directory');

  const snap = resolvePath(positionals[0]!);
  // Checked here once, so a bad snapshot is one message rather than N dead clones.
  const { readSnapshot, SnapshotError } = await import('../vm/snapshot.js');
  try {
    readSnapshot(snap);
  } catch (e) {
    if (e instanceof SnapshotError) throw new UserError(e.message);
    throw e;
  }
  const base = resolvePath(values.dir ?? `${snap}-clones`);
  const names = Array.from({ length: count }, (_, i) => `${prefix}-${i + 1}`);
  for (const n of names) {
    const d = join(base, n);
    if (existsSync(d) && readdirSync(d).length > 0) throw new UserError(`clone directory ${d} is not empty (another --prefix or --dir?)`);
  }
  for (const name of names) {
    const d = join(base, name);
    try {
      mkdirSync(d, { recursive: true });
    } catch (e) {
      throw new UserError(`cannot create ${d}: ${(e as Error).message}`);
    }
    const log = openSync(join(d, 'console.log'), 'a', 0o600);
    let pid: number | undefined;
    try {
      const child = spawn(process.execPath, [...CLONE_NODE_ARGS, CLI, 'run', '--restore', snap, '--clone', '--clone-dir', d, '--name', name], {
        detached: true,
        stdio: ['ignore', log, log],
        env: { ...process.env, ...CLONE_ENV },
      });
      pid = child.pid;
      child.unref();
    } finally {
      closeSync(log);
    }
    if (pid === undefined) throw new UserError(`could not start clone ${name}`);
    writeFileSync(join(d, 'pid'), `${pid}\n`);
    io.stdout.write(`${name} ${pid} ${d}\n`);
  }
  return 0;
}
