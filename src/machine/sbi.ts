// The Supervisor Binary Interface, implemented by the VMM itself so a kernel
// can start directly in S-mode without M-mode firmware. The core calls
// handle() synchronously for every ecall from S-mode; arguments and results
// travel in the guest's a0..a7.

import type { CpuCore } from './cpu-core.js';
import { RAM_BASE } from './layout.js';
import type { FenceRange } from './hart-board.js';

export const SBI_SUCCESS = 0n;
export const SBI_ERR_FAILED = -1n;
export const SBI_ERR_NOT_SUPPORTED = -2n;
export const SBI_ERR_INVALID_PARAM = -3n;
export const SBI_ERR_INVALID_ADDRESS = -5n;
export const SBI_ERR_ALREADY_AVAILABLE = -6n;

export const EXT_LEGACY_SET_TIMER = 0x00n;
export const EXT_LEGACY_PUTCHAR = 0x01n;
export const EXT_LEGACY_GETCHAR = 0x02n;
export const EXT_LEGACY_SHUTDOWN = 0x08n;
export const EXT_BASE = 0x10n;
export const EXT_TIME = 0x54494d45n;
export const EXT_IPI = 0x735049n;
export const EXT_RFENCE = 0x52464e43n;
export const EXT_HSM = 0x48534dn;
export const EXT_SRST = 0x53525354n;
export const EXT_DBCN = 0x4442434en;

const SUPPORTED = new Set([EXT_BASE, EXT_TIME, EXT_IPI, EXT_RFENCE, EXT_HSM, EXT_SRST, EXT_DBCN,
  EXT_LEGACY_SET_TIMER, EXT_LEGACY_PUTCHAR, EXT_LEGACY_GETCHAR, EXT_LEGACY_SHUTDOWN]);

/** SBI spec version 2.0. */
const SPEC_VERSION = (2n << 24n) | 0n;
/** Implementation ID: not one of the registered ones. */
const IMPL_ID = 0x7473n; // "ts"
const IMPL_VERSION = 1n;

const CSR_STIMECMP = 0x14d;
const CSR_MIP = 0x344;
const MIP_SSIP = 2n;
const MIP_STIP = 1n << 5n;

const A0 = 10;
const A1 = 11;

export interface SbiHost {
  consoleWrite(bytes: Uint8Array): void;
  /** Next input byte, or -1 when none is waiting. */
  consoleReadByte(): number;
  /** The guest asked to power off or reset; `code` is the exit status. */
  systemReset(kind: 'poweroff' | 'reset', code: number): void;
}

/**
 * The harts as SBI sees them: HartSet when they take turns on one thread,
 * ThreadHarts (thread-harts.ts) on a hart's own thread.
 */
export interface SbiHarts {
  readonly count: number;
  /** The hart making the call. */
  readonly current: number;
  start(h: number, addr: bigint, opaque: bigint): 'ok' | 'started' | 'invalid';
  stopCurrent(): void;
  suspendCurrent(retentive: boolean, addr: bigint, opaque: bigint): void;
  status(h: number): number | null;
  sendSoftIpi(h: number): void;
  /**
   * SBI RFENCE: the given harts flush their TLBs (`tlb`: sfence.vma, of the
   * pages of `range` if given) or their translated code's links (fence.i)
   * before the call returns.
   */
  remoteFence(to: number[], tlb: boolean, range?: FenceRange | null): void;
}

export class Sbi {
  /** Counts of calls per extension, for --stats. */
  readonly calls = new Map<bigint, number>();

  constructor(private readonly core: CpuCore, private readonly harts: SbiHarts, private readonly host: SbiHost) {}

  /** Console bytes go out with LF as CR LF, as firmware consoles do (a raw terminal needs the CR). */
  private consoleOut(bytes: Uint8Array): void {
    if (!bytes.includes(10)) return this.host.consoleWrite(bytes);
    const out: number[] = [];
    for (const b of bytes) {
      if (b === 10) out.push(13);
      out.push(b);
    }
    this.host.consoleWrite(Uint8Array.from(out));
  }

  private ret(error: bigint, value = 0n): void {
    this.core.setX(A0, error);
    this.core.setX(A1, value);
  }

  private arg(i: number): bigint {
    return this.core.getX(A0 + i);
  }

  handle(): void {
    const eid = this.core.getX(17);
    const fid = this.core.getX(16);
    this.calls.set(eid, (this.calls.get(eid) ?? 0) + 1);
    switch (eid) {
      case EXT_BASE: return this.base(fid);
      case EXT_TIME: return fid === 0n ? this.setTimer(this.arg(0)) : this.ret(SBI_ERR_NOT_SUPPORTED);
      case EXT_IPI: return fid === 0n ? this.sendIpi(this.arg(0), this.arg(1)) : this.ret(SBI_ERR_NOT_SUPPORTED);
      case EXT_RFENCE: return this.rfence(fid);
      case EXT_HSM: return this.hsm(fid);
      case EXT_SRST: return this.srst(fid);
      case EXT_DBCN: return this.dbcn(fid);
      case EXT_LEGACY_SET_TIMER:
        this.setTimer(this.arg(0));
        this.core.setX(A0, 0n);
        return;
      case EXT_LEGACY_PUTCHAR:
        this.consoleOut(new Uint8Array([Number(this.arg(0) & 0xffn)]));
        this.core.setX(A0, 0n);
        return;
      case EXT_LEGACY_GETCHAR:
        this.core.setX(A0, BigInt(this.host.consoleReadByte()));
        return;
      case EXT_LEGACY_SHUTDOWN:
        this.host.systemReset('poweroff', 0);
        return;
      default:
        this.ret(SBI_ERR_NOT_SUPPORTED);
    }
  }

  private base(fid: bigint): void {
    switch (fid) {
      case 0n: return this.ret(SBI_SUCCESS, SPEC_VERSION);
      case 1n: return this.ret(SBI_SUCCESS, IMPL_ID);
      case 2n: return this.ret(SBI_SUCCESS, IMPL_VERSION);
      case 3n: return this.ret(SBI_SUCCESS, SUPPORTED.has(this.arg(0)) ? 1n : 0n);
      case 4n: case 5n: case 6n: return this.ret(SBI_SUCCESS, 0n);
      default: return this.ret(SBI_ERR_NOT_SUPPORTED);
    }
  }

  private setTimer(deadline: bigint): void {
    // Writing stimecmp also clears a pending STIP when the deadline moves to the future.
    this.core.writeCsr(CSR_STIMECMP, deadline);
    const mip = this.core.readCsr(CSR_MIP);
    this.core.writeCsr(CSR_MIP, mip & ~MIP_STIP);
    this.ret(SBI_SUCCESS);
  }

  /**
   * The harts a (hart_mask, hart_mask_base) pair names (base -1: all harts), or
   * null when it names a hart that does not exist.
   */
  private targets(mask: bigint, base: bigint): number[] | null {
    const n = this.harts.count;
    if (base === 0xffffffffffffffffn) return Array.from({ length: n }, (_, h) => h);
    const out: number[] = [];
    for (let i = 0n; i < 64n; i++) {
      if (((mask >> i) & 1n) === 0n) continue;
      const h = base + i;
      if (h >= BigInt(n)) return null;
      out.push(Number(h));
    }
    return out;
  }

  private sendIpi(mask: bigint, base: bigint): void {
    const to = this.targets(mask, base);
    if (!to) return this.ret(SBI_ERR_INVALID_PARAM);
    for (const h of to) this.harts.sendSoftIpi(h);
    // The sender goes on with its quantum: if it then waits for an answer, it spins
    // with PAUSE (cpu_relax), which hands the core over (harts.ts).
    this.ret(SBI_SUCCESS);
  }

  private rfence(fid: bigint): void {
    if (fid > 6n) return this.ret(SBI_ERR_NOT_SUPPORTED);
    if (fid >= 3n) return this.ret(SBI_ERR_NOT_SUPPORTED); // hypervisor fences: no H extension
    const to = this.targets(this.arg(0), this.arg(1));
    if (!to) return this.ret(SBI_ERR_INVALID_PARAM);
    // (REMOTE_SFENCE_VMA and its _ASID form: the range in every address space, a superset of the ASID's)
    this.harts.remoteFence(to, fid !== 0n, fid !== 0n ? { start: this.arg(2), size: this.arg(3) } : null);
    this.ret(SBI_SUCCESS);
  }

  private hsm(fid: bigint): void {
    const id = this.arg(0);
    const h = id < BigInt(this.harts.count) ? Number(id) : -1;
    switch (fid) {
      case 0n: { // hart_start
        const r = this.harts.start(h, this.arg(1), this.arg(2));
        return this.ret(r === 'ok' ? SBI_SUCCESS : r === 'started' ? SBI_ERR_ALREADY_AVAILABLE : SBI_ERR_INVALID_PARAM);
      }
      case 1n: // hart_stop: the caller stops (a0 is not an argument)
        if (this.harts.count === 1) return this.ret(SBI_ERR_FAILED); // the only hart may not stop
        this.ret(SBI_SUCCESS);
        return this.harts.stopCurrent();
      case 2n: { // hart_get_status
        const st = this.harts.status(h);
        return st === null ? this.ret(SBI_ERR_INVALID_PARAM) : this.ret(SBI_SUCCESS, BigInt(st));
      }
      case 3n: { // hart_suspend(type, resume_addr, opaque)
        const type = this.arg(0) & 0xffffffffn;
        if (type === 0n) {
          this.ret(SBI_SUCCESS);
          return this.harts.suspendCurrent(true, 0n, 0n);
        }
        if (type === 0x80000000n) {
          this.ret(SBI_SUCCESS);
          return this.harts.suspendCurrent(false, this.arg(1), this.arg(2));
        }
        return this.ret(SBI_ERR_INVALID_PARAM);
      }
      default:
        return this.ret(SBI_ERR_NOT_SUPPORTED);
    }
  }

  private srst(fid: bigint): void {
    if (fid !== 0n) return this.ret(SBI_ERR_NOT_SUPPORTED);
    const type = this.arg(0);
    const reason = this.arg(1);
    if (type > 2n && type < 0xf0000000n) return this.ret(SBI_ERR_INVALID_PARAM);
    if (reason > 1n && reason < 0xe0000000n) return this.ret(SBI_ERR_INVALID_PARAM);
    const code = reason === 1n ? 1 : 0; // "system failure" becomes a failing exit status
    this.host.systemReset(type === 0n ? 'poweroff' : 'reset', code);
    this.ret(SBI_SUCCESS);
  }

  /** Guest-physical range [lo|hi<<32, +len) inside RAM as an offset, or -1. */
  private ramRange(len: bigint, lo: bigint, hi: bigint): number {
    const addr = lo | (hi << 32n);
    const off = addr - BigInt(RAM_BASE);
    if (off < 0n || off + len > BigInt(this.core.ramSize)) return -1;
    return Number(off);
  }

  private dbcn(fid: bigint): void {
    switch (fid) {
      case 0n: { // console_write
        const len = this.arg(0);
        const off = this.ramRange(len, this.arg(1), this.arg(2));
        if (off < 0) return this.ret(SBI_ERR_INVALID_PARAM);
        this.consoleOut(this.core.ram.slice(off, off + Number(len)));
        return this.ret(SBI_SUCCESS, len);
      }
      case 1n: { // console_read
        const len = this.arg(0);
        const off = this.ramRange(len, this.arg(1), this.arg(2));
        if (off < 0) return this.ret(SBI_ERR_INVALID_PARAM);
        let n = 0;
        while (n < Number(len)) {
          const b = this.host.consoleReadByte();
          if (b < 0) break;
          this.core.ram[off + n++] = b;
        }
        return this.ret(SBI_SUCCESS, BigInt(n));
      }
      case 2n: // console_write_byte
        this.consoleOut(new Uint8Array([Number(this.arg(0) & 0xffn)]));
        return this.ret(SBI_SUCCESS);
      default:
        return this.ret(SBI_ERR_NOT_SUPPORTED);
    }
  }
}
