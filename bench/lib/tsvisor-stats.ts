// The figures of a `tsvisor run --stats` report (asked for with SIGUSR1 while
// the guest runs) that say what one disk request or network frame costs: guest
// instructions, exits to device registers, notifications and interrupts. Two
// reports, before and after a workload, give the cost per request or frame.

export interface StatsSample {
  instructions: number;
  /** Instructions run as translated code. */
  translated: number;
  /** MMIO accesses (reads + writes) over all devices: each is an exit from the core to JavaScript. */
  mmio: number;
  /** Driver notifications (QueueNotify writes) and used-buffer interrupts, over all virtio devices. */
  notifies: number;
  interrupts: number;
  /** Supervisor external interrupts the guest took (device interrupts through the PLIC). */
  externalIrqs: number;
  /** Requests the disks served (reads, writes and others such as flushes). */
  diskOps: number;
  /** System calls from guest user mode (ecall from U). */
  syscalls: number;
  /** Host milliseconds spent running slices (the rest of the time the guest was idle or the worker was between slices). */
  sliceMs: number;
}

const num = (s: string) => Number(s.replace(/,/g, ''));

/** The figures of one report (the text from "tsvisor stats" on); null if it is not one. */
export function parseStats(text: string): StatsSample | null {
  const at = text.lastIndexOf('tsvisor stats');
  if (at < 0) return null;
  const t = text.slice(at);
  const insns = /guest instructions\s+([\d,]+)/.exec(t);
  if (!insns) return null;
  const instructions = num(insns[1]);
  const share = /translated code\s+([\d.]+)% of instructions/.exec(t);
  let mmio = 0;
  const mmioLine = /MMIO exits\s+(.*)/.exec(t);
  if (mmioLine) for (const m of mmioLine[1].matchAll(/([\d,]+) reads, ([\d,]+) writes/g)) mmio += num(m[1]) + num(m[2]);
  let notifies = 0;
  let interrupts = 0;
  for (const m of t.matchAll(/([\d,]+) notifications, ([\d,]+) interrupts/g)) {
    notifies += num(m[1]);
    interrupts += num(m[2]);
  }
  const ext = /supervisor external interrupt: ([\d,]+)/.exec(t);
  const ecalls = /ecall from U: ([\d,]+)/.exec(t);
  const slices = /([\d,]+) ms in slices/.exec(t);
  let diskOps = 0;
  for (const m of t.matchAll(/disk \d+ +read .* in ([\d,]+) ops, wrote .* in ([\d,]+) ops, ([\d,]+) other/g)) diskOps += num(m[1]) + num(m[2]) + num(m[3]);
  return {
    instructions,
    translated: share ? (instructions * Number(share[1])) / 100 : 0,
    mmio,
    notifies,
    interrupts,
    externalIrqs: ext ? num(ext[1]) : 0,
    diskOps,
    syscalls: ecalls ? num(ecalls[1]) : 0,
    sliceMs: slices ? num(slices[1]) : 0,
  };
}

/** What happened between two samples, per unit of work (request, frame, ...). */
export function perUnit(before: StatsSample, after: StatsSample, units: number): StatsSample & { translatedShare: number } {
  const d = (k: keyof StatsSample) => (after[k] - before[k]) / Math.max(1, units);
  const insns = after.instructions - before.instructions;
  return {
    instructions: d('instructions'),
    translated: d('translated'),
    mmio: d('mmio'),
    notifies: d('notifies'),
    interrupts: d('interrupts'),
    externalIrqs: d('externalIrqs'),
    diskOps: d('diskOps'),
    syscalls: d('syscalls'),
    sliceMs: d('sliceMs'),
    translatedShare: insns > 0 ? (after.translated - before.translated) / insns : 0,
  };
}
