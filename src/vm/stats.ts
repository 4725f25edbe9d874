// The --stats report: what the guest executed and how (instructions, speed,
// share run as translated code, translations, TLB slow paths, traps by cause,
// and with several harts a line per hart).

import type { MachineDeviceStats, VirtMachine } from '../machine/virt.js';
import type { BucketConfig } from '../devices/rate-limiter.js';
import type { HartReport } from '../machine/harts.js';
import { codeSizeLine } from '../jit/code-size.js';

const EXCEPTION_NAMES: Record<number, string> = {
  0: 'instruction misaligned', 1: 'instruction access fault', 2: 'illegal instruction', 3: 'breakpoint',
  4: 'load misaligned', 5: 'load access fault', 6: 'store misaligned', 7: 'store access fault',
  8: 'ecall from U', 9: 'ecall from S', 11: 'ecall from M', 12: 'instruction page fault',
  13: 'load page fault', 15: 'store page fault',
};
const INTERRUPT_NAMES: Record<number, string> = {
  1: 'supervisor software', 3: 'machine software', 5: 'supervisor timer', 7: 'machine timer',
  9: 'supervisor external', 11: 'machine external',
};

function fmt(n: bigint | number): string {
  return n.toLocaleString('en-US');
}

/**
 * `lookupsCounted`: translated code counted its TLB lookups (it does when the VM
 * runs with --stats), so a hit rate can be given.
 */
/** The worker's own loop: slices run and idle sleeps (each sleep ends in a wakeup of the worker). */
export interface LoopStats {
  slices: number;
  sleeps: number;
  /** Host time spent in slices (running the guest, devices included), ms. */
  busyMs: number;
}

export function statsReport(m: VirtMachine, elapsedMs: number, jitOn: boolean, lookupsCounted = false, loop?: LoopStats): string {
  const core = m.core;
  const insns = core.instret;
  const jitInsns = core.exports.getJitInstructions();
  const secs = elapsedMs / 1000;
  const mips = secs > 0 ? Number(insns) / secs / 1e6 : 0;
  const c = core.counters();
  const lines: string[] = [];
  lines.push('tsvisor stats');
  lines.push(`  guest instructions   ${fmt(insns)} in ${secs.toFixed(2)} s (${mips.toFixed(1)} MIPS)`);
  const share = insns > 0n ? (Number(jitInsns) / Number(insns)) * 100 : 0;
  lines.push(`  translated code      ${jitOn ? `${share.toFixed(1)}% of instructions` : 'off (--jit off)'}`);
  const js = core.jit.stats;
  lines.push(`  translations         ${fmt(js.translations)} made in ${fmt(js.modules)} modules (${(js.bytes / 1048576).toFixed(1)} MiB of wasm), ${fmt(js.flushes)} cache flushes, ${fmt(js.rejected)} not translatable; ${fmt(js.regions)} of them regions (of ${fmt(js.regionBlocks)} blocks); ${fmt(Math.round(js.ms))} ms translating, compiling and installing`);
  const w = core.jit.warm;
  if (w) {
    const ws = w.stats;
    lines.push(`  translation cache    ${fmt(ws.blocks)} blocks in ${fmt(ws.batches)} batches read; ${fmt(ws.used)} batches put back (${fmt(ws.usedBlocks)} blocks), ${fmt(ws.changed)} refused: guest code changed, ${fmt(ws.invalid)} refused: damaged; ${fmt(ws.recorded)} batches recorded${w.note ? `; ${w.note}` : ''}`);
  }
  lines.push(`  translated bytes     ${codeSizeLine(js.codeSize)}`);
  const perM = (n: bigint) => (insns > 0n ? (Number(n) / Number(insns)) * 1e6 : 0).toFixed(0);
  lines.push(`  TLB slow paths       fetch ${fmt(c.walks.fetch)}, load ${fmt(c.walks.load)}, store ${fmt(c.walks.store)} (${perM(c.walks.fetch + c.walks.load + c.walks.store)} per million instructions)`);
  if (lookupsCounted) {
    const rate = (miss: bigint, all: bigint) => (all > 0n ? `${(100 * (1 - Number(miss) / Number(all))).toFixed(2)}% of ${fmt(all)}` : 'no lookups');
    lines.push(`  data TLB hit rate    loads ${rate(c.walks.load, c.lookups.load)}, stores ${rate(c.walks.store, c.lookups.store)}`);
  }
  const s = core.sysCounters();
  lines.push(`  dispatcher           ${fmt(s.dispatch)} blocks called, ${fmt(s.headMiss)} heads interpreted, ${fmt(s.relink)} exits linked; chains ended by a trap ${fmt(s.chainTrap)}, by a batch end ${fmt(s.chainBreak)}; inside blocks ${fmt(s.jitInterp)} instructions interpreted, ${fmt(s.jitAmo)} atomics and ${fmt(s.jitCsr)} CSR instructions through the core`);
  lines.push(`  system instructions  ${fmt(s.jitSystem)} in translated code (traps, xRET, fences), ${fmt(s.jitOnward)} of them went on into the next block`);
  lines.push(`  unlinking            all links: ${fmt(s.unlinkFlush)} TLB flushes, ${fmt(s.unlinkCode)} code pages written, ${fmt(s.unlinkPage)} page fences, ${fmt(s.unlinkSuper)} switches; user links only: ${fmt(s.unlinkUser)} switches, ${fmt(s.unlinkPageUser)} page fences`);
  lines.push(`  fences and satp      sfence.vma page ${fmt(s.fencePage)} (${fmt(s.fencePageFull)} flushed all), ASID ${fmt(s.fenceAsid)}, all ${fmt(s.fenceAll)}; satp writes ${fmt(s.satp)} (${fmt(s.satpChange)} changed it); xRET ${fmt(s.xret)}, traps ${fmt(s.trapEntry)}`);
  lines.push(`  code pages           ${fmt(s.codeProtect)} protected, ${fmt(s.codeRetire)} retired by a write`);
  const traps: string[] = [];
  c.exceptions.forEach((n, i) => n > 0n && traps.push(`${EXCEPTION_NAMES[i] ?? `exception ${i}`}: ${fmt(n)}`));
  c.interrupts.forEach((n, i) => n > 0n && traps.push(`${INTERRUPT_NAMES[i] ?? `interrupt ${i}`} interrupt: ${fmt(n)}`));
  lines.push(`  traps                ${traps.length ? traps.join(', ') : 'none'}`);
  const sbi = [...m.sbi.calls].map(([eid, n]) => `0x${eid.toString(16)}: ${fmt(n)}`);
  if (sbi.length) lines.push(`  SBI calls            ${sbi.join(', ')}`);
  if (loop) lines.push(`  host loop            ${fmt(loop.slices)} slices, ${fmt(loop.sleeps)} idle sleeps, ${fmt(Math.round(loop.busyMs))} ms in slices`);
  if (m.harts.count > 1) {
    lines.push(`  harts                ${m.harts.count}, taking turns on one thread: ${fmt(m.harts.stats.switches)} switches`);
    lines.push(...hartLines(m.harts.report()));
  }
  const io = m.mmioStats();
  if (io.access.length) lines.push(`  MMIO exits           ${io.access.map((a) => `${a.name} ${fmt(a.reads)} reads, ${fmt(a.writes)} writes`).join('; ')}`);
  for (const v of io.virtio) {
    lines.push(`  ${v.name.padEnd(20)} ${fmt(v.notifies)} notifications, ${fmt(v.interrupts)} interrupts (${fmt(v.suppressed)} batches without one)${v.extra ? `; ${v.extra}` : ''}`);
  }
  lines.push(...deviceStatsLines(m.deviceStats()));
  return lines.join('\n') + '\n';
}

/** One line per hart: its state and counters. */
export function hartLines(harts: HartReport[]): string[] {
  return harts.map((r) => {
    const state = r.state === 'stopped' ? 'stopped' : `${r.state}${r.waiting ? ', in WFI' : ''}`;
    return `  hart ${r.hart}${' '.repeat(Math.max(1, 15 - String(r.hart).length))}${state}: ${fmt(r.instructions)} instructions, ${fmt(r.interrupts)} interrupts, ` +
      `${fmt(r.wfis)} WFI waits, ${fmt(r.ipis)} IPIs received, switched in ${fmt(r.switchedIn)} times`;
  });
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

function bucketText(b: BucketConfig | null | undefined, unit: string): string | null {
  if (!b) return null;
  const perSec = (b.size * 1000) / b.refillMs;
  const burst = b.oneTimeBurst ? ` (+${fmt(b.oneTimeBurst)} burst)` : '';
  return `${fmt(Math.round(perSec))} ${unit}/s${burst}`;
}

/** Disk counters and limits, and the balloon's state, one line each. */
export function deviceStatsLines(d: MachineDeviceStats): string[] {
  const lines: string[] = [];
  for (const k of d.disks) {
    const lim = [bucketText(k.limits.bandwidth, 'bytes'), bucketText(k.limits.ops, 'ops')].filter(Boolean).join(', ');
    lines.push(
      `  disk ${k.index}               read ${mib(k.readBytes)} in ${fmt(k.readOps)} ops, wrote ${mib(k.writeBytes)} in ${fmt(k.writeOps)} ops, ${fmt(k.otherOps)} other` +
        (lim ? `; limit ${lim}, throttled ${fmt(k.throttledEvents)} times for ${(k.throttledMs / 1000).toFixed(2)} s` : ''),
    );
  }
  const b = d.balloon;
  if (b) {
    const g = b.guest;
    const guest = g && g.memTotal ? `; guest MemTotal ${mib(g.memTotal)}, MemFree ${mib(g.memFree ?? 0)}` : '';
    lines.push(
      `  balloon              target ${b.targetMiB.toFixed(1)} MiB, guest holds ${b.actualMiB.toFixed(1)} MiB; ` +
        `free page reports ${fmt(b.reports)} (${mib(b.reportedBytes)}), zeroed ${mib(b.scrubbedBytes)}, returned to host 0 (wasm memory cannot shrink)${guest}`,
    );
  }
  return lines;
}
