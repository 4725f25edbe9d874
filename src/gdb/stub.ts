// The GDB remote protocol's command side: turns packets into calls on a
// DebugTarget and replies, and tells its driver when to run the guest
// (continue, step, their reverse forms) or to let go (detach, kill). Each hart
// is a thread, numbered from 1 (hart 0 is thread 1).
// Pure: no Node APIs; the driver moves bytes and runs the machine.

import { PacketReader, encodePacket, fromHex, regFromHex, regToHex, textToHex, toHex, unescapeBinary, PACKET_MAX } from './packet.js';
import { G_PACKET_REGS, registerBytes, registerRef, targetXml, type RegisterRef } from './registers.js';

/** Breakpoint and watchpoint types, numbered as in Z packets. */
export type PointType = 0 | 1 | 2 | 3 | 4;
export const Z_SW = 0;
export const Z_HW = 1;
export const Z_WRITE = 2;
export const Z_READ = 3;
export const Z_ACCESS = 4;

/** What the debugged machine offers the stub. Addresses are guest virtual unless `phys`. */
export interface DebugTarget {
  /** Harts (threads 1..harts); a target without the field has one. */
  readonly harts?: number;
  /** Registers of hart `hart` (0-based; the live one or its saved context). */
  readRegister(r: RegisterRef, hart: number): bigint | null;
  writeRegister(r: RegisterRef, v: bigint, hart: number): boolean;
  /** Up to `len` bytes at addr (virtual through `hart`'s page tables); shorter (or empty) where memory ends or is not mapped. */
  readMemory(addr: bigint, len: number, phys: boolean, hart: number): Uint8Array;
  /** Whether all of `data` was written. */
  writeMemory(addr: bigint, data: Uint8Array, phys: boolean, hart: number): boolean;
  /** Text for qThreadExtraInfo about a hart (e.g. its HSM state). */
  hartInfo?(hart: number): string;
  /** Insert or remove a breakpoint (types 0, 1) or watchpoint (2..4); false: no room or a bad address. */
  insertPoint(type: PointType, addr: bigint, len: number): boolean;
  removePoint(type: PointType, addr: bigint, len: number): boolean;
  /** Reverse execution is available (a deterministic run with checkpoints). */
  readonly canReverse: boolean;
  /** Text for `monitor CMD`; null for an unknown command. */
  monitor(cmd: string): string | null;
}

/** Why the hart stopped, as reported to GDB. */
export type StopReason =
  | { kind: 'signal'; signal: number; hart?: number; watch?: { type: 'watch' | 'rwatch' | 'awatch'; addr: bigint }; breakType?: 'swbreak' | 'hwbreak'; replayLog?: 'begin' | 'end' }
  | { kind: 'exited'; code: number };

export const SIGINT = 2;
export const SIGTRAP = 5;

/** What the driver must do after a batch of input. */
export type StubAction = 'continue' | 'step' | 'reverse-step' | 'reverse-continue' | 'detach' | 'kill';

export interface StubOutput {
  /** Bytes to send to GDB (latin1 string). */
  send: string;
  /** The driver's next move, or null to stay stopped and wait for more input. */
  action: StubAction | null;
  /** For 'step': the hart to step (the others stay stopped). */
  stepHart: number;
  /** GDB sent the interrupt byte while the guest runs. */
  interrupt: boolean;
}

const PACKET_SIZE_HEX = PACKET_MAX.toString(16);
/** Largest memory read answered at once (its hex must fit a packet). */
const MAX_READ = (PACKET_MAX - 16) >> 1;

export class GdbStub {
  private readonly reader = new PacketReader();
  /** Acknowledgements are the transport's (see Acknowledger): the stub sends none. */
  private readonly noAck = true;
  private lastStop: StopReason = { kind: 'signal', signal: SIGTRAP };
  /** `monitor phys on`: m/M/X use guest physical addresses. */
  physical = false;
  private running = false;
  /** Hart selected by Hg (registers, memory) and by Hc (what `s` steps), 0-based. */
  private gHart = 0;
  private cHart = 0;
  private stepHart = 0;

  constructor(private readonly target: DebugTarget) {}

  private get harts(): number {
    return this.target.harts ?? 1;
  }

  /** Feed bytes from GDB. While the guest runs only the interrupt byte matters (GDB sends nothing else then). */
  input(bytes: Uint8Array): StubOutput {
    let send = '';
    let action: StubAction | null = null;
    let interrupt = false;
    for (const ev of this.reader.push(bytes)) {
      if (ev.kind === 'interrupt') {
        if (this.running) interrupt = true;
        continue;
      }
      if (ev.kind === 'ack' || ev.kind === 'nack') continue; // replies are not resent: the transport is reliable
      if (ev.kind === 'bad') {
        if (!this.noAck) send += '-';
        continue;
      }
      if (!this.noAck) send += '+';
      if (action !== null) continue; // GDB waits for the stop reply before sending more
      const r = this.packet(ev.data);
      if (r.reply !== null) send += encodePacket(r.reply);
      if (r.action) {
        action = r.action;
        if (action !== 'detach' && action !== 'kill') this.running = true;
      }
    }
    return { send, action, interrupt, stepHart: this.stepHart };
  }

  /** The guest stopped: the stop reply for GDB. */
  stopped(reason: StopReason): string {
    this.running = false;
    this.lastStop = reason;
    // As QEMU does: after a stop, registers and steps refer to the hart that stopped.
    if (reason.kind === 'signal' && reason.hart !== undefined) this.gHart = this.cHart = reason.hart;
    return encodePacket(this.stopText(reason));
  }

  get isRunning(): boolean {
    return this.running;
  }

  private stopText(r: StopReason): string {
    if (r.kind === 'exited') return `W${(r.code & 0xff).toString(16).padStart(2, '0')}`;
    let s = `T${r.signal.toString(16).padStart(2, '0')}`;
    if (r.watch) s += `${r.watch.type}:${r.watch.addr.toString(16)};`;
    if (r.breakType) s += `${r.breakType}:;`;
    if (r.replayLog) s += `replaylog:${r.replayLog};`;
    return s + `thread:${((r.hart ?? this.gHart) + 1).toString(16)};`;
  }

  private packet(p: string): { reply: string | null; action?: StubAction; noAck?: boolean } {
    const t = this.target;
    const head = p[0];
    switch (head) {
      case '?':
        return { reply: this.stopText(this.lastStop) };
      case 'g': {
        let s = '';
        for (let i = 0; i < G_PACKET_REGS; i++) s += regToHex(t.readRegister(registerRef(i)!, this.gHart) ?? 0n);
        return { reply: s };
      }
      case 'G': {
        const hex = p.slice(1);
        if (hex.length < G_PACKET_REGS * 16) return { reply: 'E01' };
        for (let i = 0; i < G_PACKET_REGS; i++) {
          const v = regFromHex(hex.slice(i * 16, i * 16 + 16));
          if (v === null) return { reply: 'E01' };
          if (i > 0) t.writeRegister(registerRef(i)!, v, this.gHart);
        }
        return { reply: 'OK' };
      }
      case 'p': {
        const r = registerRef(parseInt(p.slice(1), 16));
        const v = r ? t.readRegister(r, this.gHart) : null;
        return { reply: r && v !== null ? regToHex(v, registerBytes(r)) : 'E01' };
      }
      case 'P': {
        const m = /^P([0-9a-fA-F]+)=([0-9a-fA-F]+)$/.exec(p);
        const r = m ? registerRef(parseInt(m[1], 16)) : null;
        const v = m ? regFromHex(m[2]) : null;
        return { reply: r && v !== null && t.writeRegister(r, v, this.gHart) ? 'OK' : 'E01' };
      }
      case 'm': {
        const m = /^m([0-9a-fA-F]+),([0-9a-fA-F]+)$/.exec(p);
        if (!m) return { reply: 'E01' };
        const len = Math.min(parseInt(m[2], 16), MAX_READ);
        const data = t.readMemory(BigInt('0x' + m[1]), len, this.physical, this.gHart);
        return { reply: data.length || len === 0 ? toHex(data) : 'E14' };
      }
      case 'M': {
        const m = /^M([0-9a-fA-F]+),([0-9a-fA-F]+):([0-9a-fA-F]*)$/.exec(p);
        const data = m ? fromHex(m[3]) : null;
        if (!m || !data || data.length !== parseInt(m[2], 16)) return { reply: 'E01' };
        return { reply: t.writeMemory(BigInt('0x' + m[1]), data, this.physical, this.gHart) ? 'OK' : 'E14' };
      }
      case 'X': {
        const m = /^X([0-9a-fA-F]+),([0-9a-fA-F]+):/.exec(p);
        if (!m) return { reply: 'E01' };
        const bin = unescapeBinary(p.slice(m[0].length));
        const len = parseInt(m[2], 16);
        if (bin.length !== len) return { reply: 'E01' };
        const data = Uint8Array.from(bin, (c) => c.charCodeAt(0));
        return { reply: len === 0 || t.writeMemory(BigInt('0x' + m[1]), data, this.physical, this.gHart) ? 'OK' : 'E14' };
      }
      case 'Z':
      case 'z': {
        const m = /^[Zz]([0-4]),([0-9a-fA-F]+),([0-9a-fA-F]+)/.exec(p);
        if (!m) return { reply: 'E01' };
        const type = Number(m[1]) as PointType;
        const addr = BigInt('0x' + m[2]);
        const kind = parseInt(m[3], 16);
        const ok = head === 'Z' ? t.insertPoint(type, addr, kind) : t.removePoint(type, addr, kind);
        return { reply: ok ? 'OK' : 'E22' };
      }
      case 'c':
        return { reply: null, action: this.resumeAt(p.slice(1), 'continue') };
      case 's':
        this.stepHart = this.cHart;
        return { reply: null, action: this.resumeAt(p.slice(1), 'step') };
      case 'b':
        if (!t.canReverse) return { reply: 'E01' };
        if (p === 'bs') return { reply: null, action: 'reverse-step' };
        if (p === 'bc') return { reply: null, action: 'reverse-continue' };
        return { reply: '' };
      case 'D':
        return { reply: 'OK', action: 'detach' };
      case 'k':
        return { reply: null, action: 'kill' };
      case 'H': {
        // Hg/Hc: -1 (all) and 0 (any) keep the current choice.
        const h = this.threadHart(p.slice(2));
        if (h === null || (p[1] !== 'g' && p[1] !== 'c')) return { reply: 'E01' };
        if (h >= 0) {
          if (p[1] === 'g') this.gHart = h;
          else this.cHart = h;
        }
        return { reply: 'OK' };
      }
      case 'T': {
        // Every hart is alive, stopped by HSM or not (as QEMU lists its stopped vCPUs).
        const h = this.threadHart(p.slice(1));
        return { reply: h !== null && h >= 0 ? 'OK' : 'E01' };
      }
      case 'v':
        return this.vPacket(p);
      case 'q':
      case 'Q':
        return this.query(p);
      default:
        return { reply: '' };
    }
  }

  /** c/s with an optional resume address. */
  private resumeAt(addr: string, action: StubAction): StubAction {
    if (addr) {
      const v = regFromHexAddr(addr);
      if (v !== null) this.target.writeRegister({ kind: 'pc' }, v, action === 'step' ? this.stepHart : this.gHart);
    }
    return action;
  }

  private vPacket(p: string): { reply: string | null; action?: StubAction } {
    if (p === 'vCont?') return { reply: 'vCont;c;C;s;S' };
    if (p.startsWith('vCont;')) {
      // A step names its thread (or means the Hc one): that hart runs one
      // instruction and the others stay stopped, whatever action they get
      // (GDB's scheduler-locking "step" behaviour). Otherwise every hart continues.
      const actions = p.slice(6).split(';');
      let cont = false;
      for (const a of actions) {
        const [what, thread] = a.split(':');
        const h = thread === undefined ? -1 : this.threadHart(thread);
        if (h === null) return { reply: 'E01' };
        const c = what[0];
        if (c === 's' || c === 'S') {
          this.stepHart = h >= 0 ? h : this.cHart;
          return { reply: null, action: 'step' };
        }
        if (c === 'c' || c === 'C') cont = true;
        else if (c === 't') return { reply: this.stopText({ kind: 'signal', signal: 0, hart: h >= 0 ? h : this.gHart }) };
        else return { reply: 'E01' };
      }
      return cont ? { reply: null, action: 'continue' } : { reply: 'E01' };
    }
    if (p.startsWith('vKill')) return { reply: 'OK', action: 'kill' };
    return { reply: '' }; // vMustReplyEmpty, vFile, vRun...: not offered
  }

  private query(p: string): { reply: string | null; noAck?: boolean } {
    if (p.startsWith('qSupported')) {
      const feats = [`PacketSize=${PACKET_SIZE_HEX}`, 'qXfer:features:read+', 'swbreak+', 'hwbreak+', 'QStartNoAckMode+', 'vContSupported+'];
      if (this.target.canReverse) feats.push('ReverseStep+', 'ReverseContinue+');
      return { reply: feats.join(';') };
    }
    if (p === 'QStartNoAckMode') return { reply: 'OK', noAck: true };
    if (p.startsWith('qXfer:features:read:')) {
      const m = /^qXfer:features:read:([^:]+):([0-9a-fA-F]+),([0-9a-fA-F]+)$/.exec(p);
      if (!m) return { reply: 'E01' };
      if (m[1] !== 'target.xml') return { reply: 'E00' };
      const xml = targetXml();
      const off = parseInt(m[2], 16);
      const len = Math.min(parseInt(m[3], 16), PACKET_MAX - 16);
      const chunk = xml.slice(off, off + len);
      return { reply: (off + len >= xml.length ? 'l' : 'm') + chunk };
    }
    if (p === 'qC') return { reply: `QC${(this.gHart + 1).toString(16)}` };
    if (p === 'qfThreadInfo') return { reply: 'm' + Array.from({ length: this.harts }, (_, h) => (h + 1).toString(16)).join(',') };
    if (p === 'qsThreadInfo') return { reply: 'l' };
    if (p.startsWith('qAttached')) return { reply: '1' };
    if (p.startsWith('qSymbol')) return { reply: 'OK' };
    if (p.startsWith('qThreadExtraInfo,')) {
      const h = this.threadHart(p.slice(17));
      if (h === null || h < 0) return { reply: 'E01' };
      return { reply: textToHex(this.target.hartInfo?.(h) ?? `hart ${h}`) };
    }
    if (p.startsWith('qRcmd,')) {
      const cmd = fromHex(p.slice(6));
      if (!cmd) return { reply: 'E01' };
      const text = this.monitor(new TextDecoder().decode(cmd).trim());
      return { reply: text === null ? '' : text === '' ? 'OK' : textToHex(text) };
    }
    return { reply: '' };
  }

  private monitor(cmd: string): string | null {
    const words = cmd.split(/\s+/);
    if (words[0] === 'phys') {
      if (words[1] === 'on' || words[1] === 'off') this.physical = words[1] === 'on';
      else if (words.length > 1) return 'usage: monitor phys [on|off]\n';
      return `memory accesses use guest ${this.physical ? 'physical' : 'virtual'} addresses\n`;
    }
    if (words[0] === 'help') {
      return [
        'monitor phys [on|off]  memory accesses by guest physical (on) or virtual (off) address',
        ...(this.target.monitor('help') ?? '').split('\n').filter(Boolean),
        '',
      ].join('\n');
    }
    return this.target.monitor(cmd) ?? `unknown monitor command: ${cmd} (try monitor help)\n`;
  }

  /** A thread id (hex, or p1.TID) as a hart: -1 for "all" or "any", null when bad or no such hart. */
  private threadHart(id: string): number | null {
    const m = /^(?:p(?:-1|0*1)\.)?(-1|[0-9a-fA-F]{1,8})$/.exec(id);
    if (!m) return null;
    if (m[1] === '-1') return -1;
    const t = parseInt(m[1], 16);
    if (t === 0) return -1;
    return t <= this.harts ? t - 1 : null;
  }
}

function regFromHexAddr(s: string): bigint | null {
  return /^[0-9a-fA-F]{1,16}$/.test(s) ? BigInt('0x' + s) : null;
}
