// Host memory of `tsvisor run` beyond guest RAM: the real CLI boots the default
// guest, which then sits idle at its prompt, and the test reads the process's
// /proc/PID/smaps.
//
// - The C heap stays in at most two malloc arenas (bin/tsvisor.js limits them
//   through the native addon): by glibc's default the VM thread and V8's
//   compiler and GC threads took five or six, which kept about 35 MiB of freed
//   compiler memory resident.
// - Once the guest is idle (its boot translations dropped, what it translated
//   since collected; see housekeeping() in src/vm/worker.ts), the anonymous
//   memory outside the wasm memory (C heap, V8 heaps, generated code, stacks)
//   comes under ANON_LIMIT_MIB. It was 61-65 MiB before these changes when V8
//   happened to collect and about 95 MiB when it did not; 43-48 MiB after.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDefaultGuest } from '../src/image/default-guest.js';
import { budget } from './lib/budget.js';
import { ChildConsole } from './lib/vm-console.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin/tsvisor.js');
const MEM_MIB = 256;
const ANON_LIMIT_MIB = 56;
const ARENA = 64 * 1024 * 1024;

const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) c.kill('SIGKILL');
});

interface Mapping {
  start: number;
  end: number;
  perm: string;
  name: string;
  rssKiB: number;
}

function mappings(pid: number): Mapping[] {
  const out: Mapping[] = [];
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head) out.push({ start: parseInt(head[1]!, 16), end: parseInt(head[2]!, 16), perm: head[3]!, name: head[4]!, rssKiB: 0 });
    else if (line.startsWith('Rss:') && out.length) out[out.length - 1]!.rssKiB = Number(line.split(/\s+/)[1]);
  }
  return out;
}

/** glibc's thread arenas: a 64 MiB-aligned reservation of 64 MiB, its used part readable and writable, the rest inaccessible. */
function threadArenas(maps: Mapping[]): number {
  let n = 0;
  for (let i = 0; i < maps.length; i++) {
    const m = maps[i]!;
    if (m.name !== '' || !m.perm.startsWith('rw') || m.start % ARENA !== 0) continue;
    const next = maps[i + 1];
    const end = next && next.start === m.end && next.perm.startsWith('---') && next.name === '' ? next.end : m.end;
    if (end - m.start === ARENA) n++;
  }
  return n;
}

/** Resident anonymous memory outside the wasm memory (the largest readable-writable anonymous mapping, guest RAM in it), MiB. */
function anonBeyondGuestMiB(maps: Mapping[]): number {
  const anon = maps.filter((m) => m.name === '' || m.name === '[heap]');
  const guest = anon.filter((m) => m.perm.startsWith('rw')).reduce((a, b) => (b.end - b.start > a.end - a.start ? b : a));
  assert.ok(guest.end - guest.start >= MEM_MIB * 1024 * 1024, 'the wasm memory holding guest RAM is found');
  return anon.filter((m) => m !== guest).reduce((s, m) => s + m.rssKiB, 0) / 1024;
}

test('an idle `tsvisor run` keeps its C heap in two arenas and its anonymous memory beyond guest RAM small', { timeout: budget(15 * 60_000) }, async (t) => {
  if (!existsSync(join(ROOT, 'build/guest-memory.node'))) {
    t.skip('build/guest-memory.node is not built (no C compiler)');
    return;
  }
  const guest = await ensureDefaultGuest({});
  const child = spawn(process.execPath, [CLI, 'run', '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', 'console=ttyS0', '--mem', `${MEM_MIB}M`, '--net', 'none'], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.add(child);
  const c = new ChildConsole(child);
  await c.waitFor(/tsvisor guest ready/, budget(5 * 60_000));
  await c.waitFor(/# /, budget(60_000));
  const pid = child.pid!;

  const arenas = threadArenas(mappings(pid));
  t.diagnostic(`at the prompt: ${arenas} thread arenas, ${anonBeyondGuestMiB(mappings(pid)).toFixed(1)} MiB anonymous beyond guest RAM`);
  assert.ok(arenas <= 1, `at most one thread arena besides the main one, found ${arenas}`);

  // Idle: the translations go after 10 s, a collection follows; poll until then.
  const until = Date.now() + budget(120_000);
  let anon = Infinity;
  for (;;) {
    anon = anonBeyondGuestMiB(mappings(pid));
    if (anon < ANON_LIMIT_MIB || Date.now() > until) break;
    await new Promise((r) => setTimeout(r, 2000));
  }
  t.diagnostic(`idle: ${anon.toFixed(1)} MiB anonymous beyond guest RAM`);
  assert.ok(anon < ANON_LIMIT_MIB, `anonymous memory beyond guest RAM ${anon.toFixed(1)} MiB, want under ${ANON_LIMIT_MIB}`);
  assert.ok(threadArenas(mappings(pid)) <= 1, 'still at most one thread arena');

  c.type('poweroff -f\n');
  assert.equal(await c.exited, 0);
});
