// Host memory of a booted guest: the resident set of `tsvisor run` and of QEMU
// with the same kernel, initramfs and 512 MiB, read from /proc after the shell
// prompt appears. For tsvisor it also reports how much of the guest RAM mapping
// is resident (RAM the guest actually touched), from /proc/PID/smaps: the
// speed issue's target is RSS <= touched guest RAM + 32 MiB. Measured twice:
// 3 s after the prompt (the boot's translations still held) and after the guest
// has sat idle at its prompt for 45 s (an idle VM drops its translations after
// 10 s; see housekeeping() in src/vm/worker.ts). QEMU is read at the same times.
// What tsvisor holds beyond the wasm memory is split by kind of mapping: the
// Node binary's file pages, other files, the C heap, generated code, and the
// rest of the anonymous memory (the V8 heaps of both isolates, thread stacks).
//
//   npm run bench:memory -- [--json]

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ensureDefaultGuest } from '../src/image/default-guest.js';
import { ConsoleSession } from './lib/console.js';
import { TSVISOR_BIN } from './lib/guest-build.js';
import { cpuModel, qemuVersion } from './lib/host.js';
import { killAll } from './lib/proc.js';

const MEM_MIB = 512;
const APPEND = 'console=ttyS0';
const IDLE_MS = 45_000;

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/**
 * Resident KiB of the wasm memory holding guest RAM: the readable-writable anonymous
 * mapping a little larger than guest RAM (guest RAM sits after the core's tables and
 * the eight hart windows, 128 MiB in; V8 reserves more address space around it, but
 * as separate inaccessible mappings).
 */
function guestRamResidentKiB(pid: number): number | null {
  let best: { size: number; rss: number } | null = null;
  let cur: { size: number; rss: number } | null = null;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ 0\s*$/.exec(line);
    if (head) {
      cur = { size: (parseInt(head[2], 16) - parseInt(head[1], 16)) / 1024, rss: 0 };
      const fits = head[3].startsWith('rw') && cur.size >= MEM_MIB * 1024 && cur.size <= (MEM_MIB + 256) * 1024;
      if (fits && (!best || cur.size > best.size)) best = cur;
    } else if (line.startsWith('Rss:') && cur) cur.rss = Number(line.split(/\s+/)[1]);
  }
  return best ? best.rss : null;
}

/** Resident memory beyond the wasm memory, by kind of mapping (KiB; file pages by PSS too). */
interface Breakdown {
  /** The Node binary's file pages (shared with every Node process on the host). */
  nodeBinaryRss: number;
  nodeBinaryPss: number;
  /** Other files: shared libraries, the native addons. */
  otherFilesRss: number;
  /** The C heap: glibc's main arena ([heap]) and its thread arenas (64 MiB-aligned anonymous mappings). */
  malloc: number;
  /** Anonymous executable memory: V8's generated code (the core's and the translations' wasm, JavaScript). */
  code: number;
  /** Other anonymous memory: the V8 heaps of both isolates (256 KiB pages), thread stacks. */
  otherAnon: number;
}

const ARENA_ALIGN = 64 * 1024 * 1024;

function breakdown(pid: number): Breakdown {
  const b: Breakdown = { nodeBinaryRss: 0, nodeBinaryPss: 0, otherFilesRss: 0, malloc: 0, code: 0, otherAnon: 0 };
  let kind: keyof Breakdown | 'guest' | null = null;
  let isNode = false;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (head) {
      const start = parseInt(head[1], 16);
      const size = (parseInt(head[2], 16) - start) / 1024;
      const perm = head[3];
      const name = head[5];
      isNode = false;
      if (name === '[heap]') kind = 'malloc';
      else if (name.startsWith('/')) {
        isNode = name === process.execPath || /\/node$/.test(name);
        kind = isNode ? 'nodeBinaryRss' : 'otherFilesRss';
      } else if (name !== '') kind = 'otherAnon'; // [stack], [vvar], ...
      else if (perm.includes('x')) kind = 'code';
      else if (perm.startsWith('rw') && size >= MEM_MIB * 1024 && size <= (MEM_MIB + 256) * 1024) kind = 'guest';
      else if (perm.startsWith('rw') && start % ARENA_ALIGN === 0 && size <= ARENA_ALIGN / 1024) kind = 'malloc';
      else kind = 'otherAnon';
      continue;
    }
    if (!kind || kind === 'guest') continue;
    const m = /^(Rss|Pss):\s+(\d+) kB/.exec(line);
    if (!m) continue;
    if (m[1] === 'Rss') b[kind] += Number(m[2]);
    else if (isNode) b.nodeBinaryPss += Number(m[2]);
  }
  return b;
}

/** Proportional set size: shared pages (the Node binary's, mostly) count by their share. */
function pssKiB(pid: number): number {
  const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

interface Sample {
  rss: number;
  pss: number;
  guest: number | null;
  /** tsvisor only. */
  parts?: Breakdown;
}

async function measure(cmd: string, args: string[], parts = false): Promise<{ early: Sample; idle: Sample }> {
  const s = new ConsoleSession(cmd, args);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  try {
    await s.waitForShell(300_000);
    const pid = s.child.pid!;
    const sample = (): Sample => ({ rss: rssKiB(pid), pss: pssKiB(pid), guest: guestRamResidentKiB(pid), parts: parts ? breakdown(pid) : undefined });
    await sleep(3000); // let the boot's last work settle
    const early = sample();
    await sleep(IDLE_MS - 3000);
    return { early, idle: sample() };
  } finally {
    await s.poweroff();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { json: { type: 'boolean', default: false } } });
  const say = (t: string) => process.stderr.write(t + '\n');
  const g = await ensureDefaultGuest({ progress: false, log: (t) => say(t.replace(/\n$/, '')) });
  say('qemu: booting');
  const q = await measure('qemu-system-riscv64', ['-M', 'virt', '-m', `${MEM_MIB}M`, '-nographic', '-kernel', g.kernel, '-initrd', g.initrd, '-append', APPEND]);
  say('tsvisor: booting');
  const t = await measure(process.execPath, [TSVISOR_BIN, 'run', '--kernel', g.kernel, '--initrd', g.initrd, '--append', APPEND, '--mem', `${MEM_MIB}M`, '--net', 'none'], true);
  const mib = (k: number) => Number((k / 1024).toFixed(0));
  const row = (qs: Sample, ts: Sample) => {
    const overhead = ts.guest === null ? null : ts.rss - ts.guest;
    return {
      qemuRssMiB: mib(qs.rss),
      qemuPssMiB: mib(qs.pss),
      tsvisorRssMiB: mib(ts.rss),
      tsvisorPssMiB: mib(ts.pss),
      tsvisorOverheadPssMiB: ts.guest === null ? null : mib(ts.pss - ts.guest),
      tsvisorGuestRamResidentMiB: ts.guest === null ? null : mib(ts.guest),
      tsvisorOverheadMiB: overhead === null ? null : mib(overhead),
      targetMet: overhead === null ? null : overhead <= 32 * 1024,
      tsvisorBeyondMiB: ts.parts
        ? {
            nodeBinaryRss: mib(ts.parts.nodeBinaryRss),
            nodeBinaryPss: mib(ts.parts.nodeBinaryPss),
            otherFiles: mib(ts.parts.otherFilesRss),
            malloc: mib(ts.parts.malloc),
            generatedCode: mib(ts.parts.code),
            v8HeapsAndStacks: mib(ts.parts.otherAnon),
          }
        : null,
    };
  };
  const result = {
    date: new Date().toISOString().slice(0, 10), cpu: cpuModel(), qemu: qemuVersion(), node: process.version,
    afterBoot: row(q.early, t.early),
    idleAtPrompt: row(q.idle, t.idle),
  };
  if (values.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  else {
    const lines = (title: string, r: ReturnType<typeof row>) => [
      `${title}`,
      `  QEMU:    RSS ${r.qemuRssMiB} MiB, PSS ${r.qemuPssMiB} MiB`,
      `  tsvisor: RSS ${r.tsvisorRssMiB} MiB, PSS ${r.tsvisorPssMiB} MiB; the wasm memory's resident part ${r.tsvisorGuestRamResidentMiB ?? '?'} MiB (touched guest RAM plus the core's tables)`,
      `  tsvisor beyond it: RSS ${r.tsvisorOverheadMiB ?? '?'} MiB (target 32 MiB: ${r.targetMet === null ? 'not measured' : r.targetMet ? 'met' : 'NOT met'}), PSS ${r.tsvisorOverheadPssMiB ?? '?'} MiB`,
      ...(r.tsvisorBeyondMiB
        ? [
            `    of it: Node binary ${r.tsvisorBeyondMiB.nodeBinaryRss} MiB (PSS ${r.tsvisorBeyondMiB.nodeBinaryPss}), other files ${r.tsvisorBeyondMiB.otherFiles}, ` +
              `C heap ${r.tsvisorBeyondMiB.malloc}, generated code ${r.tsvisorBeyondMiB.generatedCode}, V8 heaps and stacks ${r.tsvisorBeyondMiB.v8HeapsAndStacks} MiB`,
          ]
        : []),
    ];
    process.stdout.write(
      [
        '',
        `Resident memory of the default guest (${MEM_MIB} MiB guest RAM)`,
        ...lines('3 s after the prompt:', result.afterBoot),
        ...lines(`idle at the prompt for ${IDLE_MS / 1000} s:`, result.idleAtPrompt),
        `  ${result.date}; ${result.cpu}; node ${result.node}; ${result.qemu}`,
        '',
      ].join('\n'),
    );
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:memory: ${e instanceof Error ? e.message : String(e)}\n`);
  killAll();
  process.exit(1);
});
