// What a debugger's hardware breakpoints and watchpoints cost a guest that
// does not hit them. bench/guest/bare/watch-loop.S (a load/add/store loop over
// 2 KiB of one page, about 77 million instructions) runs on a whole machine,
// with the translator, under each arrangement of the Sdtrig triggers the GDB
// stub uses, the arrangements taking turns so a change in the host's load
// hits them alike. Reported: the median time of each and its ratio to the run
// with no trigger. The retired instruction counts must all be equal.
//
//   npm run bench:triggers -- [--runs N] [--json]

import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { VirtMachine, EXIT_BREAKPOINT } from '../src/machine/virt.js';
import type { TriggerSpec } from '../src/machine/cpu-core.js';
import { table } from './lib/format.js';
import { REPO_ROOT } from './lib/guest-build.js';
import { track } from './lib/proc.js';

const SRC = join(REPO_ROOT, 'bench/guest/bare/watch-loop.S');
const LINK = join(REPO_ROOT, 'test/guest/link.ld');
const WASM = join(REPO_ROOT, 'build/cpu.wasm');

interface Case {
  name: string;
  triggers: (sym: Map<string, bigint>) => TriggerSpec[];
  /** The same points as GDB commands (for QEMU's stub). */
  gdb: (sym: Map<string, bigint>) => string[];
}

const hex = (v: bigint) => '0x' + v.toString(16);

const CASES: Case[] = [
  { name: 'no point', triggers: () => [], gdb: () => [] },
  {
    name: 'watch, rwatch, awatch, hbreak on other pages',
    triggers: (s) => [
      { store: true, address: s.get('other')!, length: 8n },
      { load: true, address: s.get('other')! + 8n, length: 8n },
      { load: true, store: true, address: s.get('other')! + 16n, length: 8n },
      { execute: true, address: s.get('never_far')! },
    ],
    gdb: (s) => [`watch *(long*)${hex(s.get('other')!)}`, `rwatch *(long*)${hex(s.get('other')! + 8n)}`,
      `awatch *(long*)${hex(s.get('other')! + 16n)}`, `hbreak *${hex(s.get('never_far')!)}`],
  },
  {
    name: 'rwatch on the loop\'s data page, bytes it skips',
    triggers: (s) => [{ load: true, address: s.get('data')! + 3072n, length: 8n }],
    gdb: (s) => [`rwatch *(long*)${hex(s.get('data')! + 3072n)}`],
  },
  {
    name: 'hbreak on the loop\'s code page, not executed',
    triggers: (s) => [{ execute: true, address: s.get('never_near')! }],
    gdb: (s) => [`hbreak *${hex(s.get('never_near')!)}`],
  },
];

function build(dir: string): { path: string; elf: Uint8Array; sym: Map<string, bigint> } {
  const out = join(dir, 'watch-loop.elf');
  const cc = spawnSync('riscv64-linux-gnu-gcc', ['-march=rv64gc', '-mabi=lp64d', '-mcmodel=medany', '-static', '-nostdlib', '-nostartfiles',
    '-T', LINK, '-Wl,--build-id=none', '-o', out, SRC], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`building the workload failed (gcc-riscv64-linux-gnu, scripts/packages.txt): ${cc.stderr}`);
  const nm = spawnSync('riscv64-linux-gnu-nm', [out], { encoding: 'utf8' });
  const sym = new Map(nm.stdout.trim().split('\n').map((l) => l.split(' ')).map(([a, , n]) => [n, BigInt('0x' + a)] as [string, bigint]));
  return { path: out, elf: new Uint8Array(readFileSync(out)), sym };
}

/** One run: seconds from the first instruction to poweroff, and the instructions retired. */
function runOnce(wasm: Uint8Array, elf: Uint8Array, specs: TriggerSpec[]): { seconds: number; instret: bigint } {
  let off = false;
  const created = VirtMachine.create(wasm, { ramSize: 64 << 20, kernel: elf, bootargs: '', deterministic: true, jit: true }, {
    consoleOut: () => {},
    power: () => {
      off = true;
    },
  });
  if (!created.ok) throw new Error(created.error);
  const m = created.machine;
  specs.forEach((s, i) => m.core.setTrigger(i, s));
  const t0 = performance.now();
  while (!off) {
    if (m.runSlice(2_000_000) === EXIT_BREAKPOINT) throw new Error(`a trigger stopped the loop at pc 0x${m.core.pc.toString(16)}`);
  }
  return { seconds: (performance.now() - t0) / 1000, instret: m.core.instret };
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((res) => srv.listen(0, '127.0.0.1', res));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((res) => srv.close(() => res()));
  return port;
}

/** One QEMU run with GDB setting `points` through QEMU's stub: the seconds the program measured. */
async function qemuOnce(elf: string, points: string[]): Promise<number> {
  const port = await freePort();
  const qemu = track(spawn('qemu-system-riscv64', ['-M', 'virt', '-m', '64M', '-nographic', '-bios', 'none', '-kernel', elf,
    '-gdb', `tcp:127.0.0.1:${port}`, '-S'], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  qemu.stdout!.on('data', (d: Buffer) => (out += d.toString('latin1')));
  qemu.stderr!.on('data', (d: Buffer) => (out += d.toString('latin1')));
  const exited = new Promise<void>((res) => qemu.on('close', () => res()));
  const gdb = track(spawn('gdb-multiarch', ['-nx', '-batch', '-ex', 'set architecture riscv:rv64', '-ex', 'set tcp connect-timeout 60',
    '-ex', `target remote 127.0.0.1:${port}`, ...points.flatMap((c) => ['-ex', c]), '-ex', 'continue'], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let gout = '';
  gdb.stdout!.on('data', (d: Buffer) => (gout += d.toString()));
  gdb.stderr!.on('data', (d: Buffer) => (gout += d.toString()));
  const timer = setTimeout(() => qemu.kill('SIGKILL'), 600_000);
  await exited;
  clearTimeout(timer);
  gdb.kill('SIGKILL');
  const m = /T=([0-9a-f]{16})/.exec(out);
  if (!m) throw new Error(`QEMU's run printed no time:\n${out}\ngdb:\n${gout}`);
  return Number(BigInt('0x' + m[1])) / 10_000_000; // QEMU virt's timebase is 10 MHz
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' }, json: { type: 'boolean', default: false }, 'no-qemu': { type: 'boolean', default: false } } });
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs must be a positive integer');
  const withQemu = !values['no-qemu'];
  if (withQemu && (spawnSync('qemu-system-riscv64', ['--version']).status !== 0 || spawnSync('gdb-multiarch', ['--version']).status !== 0)) {
    throw new Error('qemu-system-riscv64 and gdb-multiarch are needed (scripts/packages.txt), or pass --no-qemu');
  }
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-bench-triggers-'));
  try {
    const { path, elf, sym } = build(dir);
    const wasm = new Uint8Array(readFileSync(WASM));
    const times = CASES.map(() => [] as number[]);
    const qtimes = CASES.map(() => [] as number[]);
    let instret: bigint | null = null;
    runOnce(wasm, elf, []); // warm V8's compilers for the host side
    for (let r = 0; r < runs; r++) {
      for (const [i, c] of CASES.entries()) {
        const got = runOnce(wasm, elf, c.triggers(sym));
        if (instret !== null && got.instret !== instret) throw new Error(`${c.name}: ${got.instret} instructions, not ${instret}`);
        instret = got.instret;
        times[i].push(got.seconds);
        const q = withQemu ? await qemuOnce(path, c.gdb(sym)) : NaN;
        qtimes[i].push(q);
        process.stderr.write(`run ${r + 1}/${runs} ${c.name}: tsvisor ${got.seconds.toFixed(3)} s, QEMU ${q.toFixed(3)} s\n`);
      }
    }
    const base = median(times[0]);
    const qbase = median(qtimes[0]);
    const rows = CASES.map((c, i) => ({
      name: c.name, seconds: median(times[i]), ratio: median(times[i]) / base,
      qemuSeconds: withQemu ? median(qtimes[i]) : null, qemuRatio: withQemu ? median(qtimes[i]) / qbase : null,
    }));
    if (values.json) {
      process.stdout.write(JSON.stringify({ instructions: String(instret), runs, rows }, null, 2) + '\n');
    } else {
      process.stdout.write(`${instret} instructions per run, median of ${runs} runs, translator on\n`);
      const cells = rows.map((x) => [x.name, x.seconds.toFixed(3), x.ratio.toFixed(2), x.qemuSeconds?.toFixed(3) ?? '-', x.qemuRatio?.toFixed(2) ?? '-']);
      process.stdout.write(table([['points armed', 'tsvisor s', 'x none', 'QEMU s', 'x none'], ...cells], new Set([1, 2, 3, 4])) + '\n');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
