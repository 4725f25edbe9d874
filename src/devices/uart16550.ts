// ns16550a UART, the guest console. Transmission is instantaneous (the transmit
// holding register is always empty), reception goes through a FIFO that the host
// fills with pushInput(). Interrupt behaviour follows the real 16550 as QEMU models
// it; Linux's 8250 driver transmits from the THR-empty interrupt, so its rules
// matter: the THRE source is raised when THR becomes empty (after each write, or when
// IER.ETBEI goes 0 -> 1 while THR is empty) and lowered by a read of IIR that
// reports it, or by a write to THR.

import type { IrqLine, MmioDevice, RestoreResult, Snapshottable } from './device.js';
import { isIntArray, isIntIn, isRecord } from './device.js';

// ---- Register offsets (byte registers, reg-shift 0) ----
export const UART_RBR = 0; // read, DLAB=0: receive buffer
export const UART_THR = 0; // write, DLAB=0: transmit holding
export const UART_DLL = 0; // DLAB=1: divisor latch low
export const UART_IER = 1; // DLAB=0: interrupt enable
export const UART_DLM = 1; // DLAB=1: divisor latch high
export const UART_IIR = 2; // read: interrupt identification
export const UART_FCR = 2; // write: FIFO control
export const UART_LCR = 3; // line control
export const UART_MCR = 4; // modem control
export const UART_LSR = 5; // line status (read only)
export const UART_MSR = 6; // modem status (read only)
export const UART_SCR = 7; // scratch

// ---- IER bits ----
export const IER_RDI = 0x01; // received data available
export const IER_THRI = 0x02; // transmit holding register empty
export const IER_RLSI = 0x04; // receiver line status
export const IER_MSI = 0x08; // modem status

// ---- IIR values ----
export const IIR_NO_INT = 0x01;
export const IIR_ID_MASK = 0x0e;
export const IIR_MSI = 0x00;
export const IIR_THRI = 0x02;
export const IIR_RDI = 0x04;
export const IIR_RLSI = 0x06;
export const IIR_CTI = 0x0c; // character timeout (FIFO mode, below trigger level)
export const IIR_FIFO_ENABLED = 0xc0;

// ---- FCR bits ----
export const FCR_ENABLE = 0x01;
export const FCR_CLEAR_RX = 0x02;
export const FCR_CLEAR_TX = 0x04;
export const FCR_TRIGGER_MASK = 0xc0;

// ---- LCR / MCR bits ----
export const LCR_DLAB = 0x80;
export const MCR_DTR = 0x01;
export const MCR_RTS = 0x02;
export const MCR_OUT1 = 0x04;
export const MCR_OUT2 = 0x08;
export const MCR_LOOP = 0x10;

// ---- LSR bits ----
export const LSR_DR = 0x01;
export const LSR_OE = 0x02;
export const LSR_PE = 0x04;
export const LSR_FE = 0x08;
export const LSR_BI = 0x10;
export const LSR_THRE = 0x20;
export const LSR_TEMT = 0x40;
export const LSR_ERR_ANY = LSR_OE | LSR_PE | LSR_FE | LSR_BI;

// ---- MSR bits ----
export const MSR_CTS = 0x10;
export const MSR_DSR = 0x20;
export const MSR_RI = 0x40;
export const MSR_DCD = 0x80;

/** Depth of the receive FIFO when FIFOs are enabled (1 byte otherwise, as on a 16450). */
export const UART_FIFO_SIZE = 16;
/** Receive trigger levels selected by FCR bits 7:6. */
const RX_TRIGGER = [1, 4, 8, 14];

export interface Uart16550Options {
  name?: string;
  /** Called with each transmitted byte, at the moment the guest writes THR. */
  onOutput: (byte: number) => void;
  /** The UART's interrupt line (to the PLIC). */
  irq?: IrqLine;
  /**
   * The guest took a byte from the receive FIFO: the host may push more now.
   * Input then arrives at points only the guest decides, not at the host's
   * slice boundaries, which keeps deterministic runs (and restored snapshots) exact.
   */
  onRxSpace?: () => void;
}

export interface Uart16550State {
  ier: number;
  lcr: number;
  mcr: number;
  fcr: number;
  lsrErr: number;
  scr: number;
  dll: number;
  dlm: number;
  thrPending: boolean;
  rx: number[];
}

export class Uart16550 implements MmioDevice, Snapshottable {
  readonly name: string;
  private readonly onOutput: (byte: number) => void;
  private readonly irq: IrqLine | undefined;
  private readonly onRxSpace: (() => void) | undefined;

  private ier = 0;
  private lcr = 0;
  private mcr = 0;
  private fcr = 0; // only the enable and trigger bits are kept
  private lsrErr = 0; // sticky error bits (overrun in loopback), cleared by reading LSR
  private scr = 0;
  private dll = 0x0c; // 9600 baud at 1.8432 MHz: whatever, the guest sets it
  private dlm = 0;
  /** THR-empty interrupt source is active. */
  private thrPending = false;
  /** Receive FIFO as a ring buffer. */
  private readonly rxBuf = new Uint8Array(UART_FIFO_SIZE);
  private rxHead = 0;
  private rxCount = 0;
  private irqLevel = false;

  constructor(opts: Uart16550Options) {
    this.name = opts.name ?? 'uart16550';
    this.onOutput = opts.onOutput;
    this.irq = opts.irq;
    this.onRxSpace = opts.onRxSpace;
  }

  // ---- Host side ----

  /** How many bytes pushInput() would accept now. */
  rxRoom(): number {
    return this.rxCapacity() - this.rxCount;
  }

  /**
   * Queue bytes received from the host side. Returns how many were accepted (the
   * rest did not fit: the caller keeps them and retries after the guest reads).
   */
  pushInput(bytes: ArrayLike<number>): number {
    let n = 0;
    const room = this.rxRoom();
    while (n < bytes.length && n < room) {
      this.rxPush(bytes[n]! & 0xff);
      n++;
    }
    this.updateIrq();
    return n;
  }

  /** Current level of the interrupt line. */
  /** The guest driver has enabled the receive interrupt (a tty on this port is open). */
  get receiveInterruptEnabled(): boolean {
    return (this.ier & IER_RDI) !== 0;
  }

  get irqAsserted(): boolean {
    return this.irqLevel;
  }

  // ---- Guest side ----

  read(offset: number, _size: 1 | 2 | 4): number {
    let v = 0;
    switch (offset) {
      case UART_RBR:
        if (this.lcr & LCR_DLAB) v = this.dll;
        else {
          const had = this.rxCount > 0;
          v = this.rxPop();
          if (had) this.onRxSpace?.();
        }
        break;
      case UART_IER:
        v = this.lcr & LCR_DLAB ? this.dlm : this.ier;
        break;
      case UART_IIR: {
        const id = this.currentIir();
        v = id | (this.fcr & FCR_ENABLE ? IIR_FIFO_ENABLED : 0);
        // Reading IIR while it reports THR empty acknowledges that source.
        if (id === IIR_THRI) this.thrPending = false;
        break;
      }
      case UART_LCR:
        v = this.lcr;
        break;
      case UART_MCR:
        v = this.mcr;
        break;
      case UART_LSR:
        v = this.lsr();
        this.lsrErr = 0;
        break;
      case UART_MSR:
        v = this.msr();
        break;
      case UART_SCR:
        v = this.scr;
        break;
      default:
        v = 0;
    }
    this.updateIrq();
    return v;
  }

  write(offset: number, _size: 1 | 2 | 4, value: number): void {
    const b = value & 0xff;
    switch (offset) {
      case UART_THR:
        if (this.lcr & LCR_DLAB) this.dll = b;
        else this.transmit(b);
        break;
      case UART_IER:
        if (this.lcr & LCR_DLAB) {
          this.dlm = b;
        } else {
          const old = this.ier;
          this.ier = b & 0x0f;
          // Enabling the THRE interrupt while THR is empty raises it at once, even if
          // it had been acknowledged before (real 16550s and QEMU; Linux's THRE test
          // at port startup relies on it).
          if ((old ^ this.ier) & IER_THRI) this.thrPending = (this.ier & IER_THRI) !== 0;
        }
        break;
      case UART_FCR: {
        const enable = b & FCR_ENABLE;
        // Changing the enable bit clears both FIFOs.
        if (enable !== (this.fcr & FCR_ENABLE) || b & FCR_CLEAR_RX) this.rxClear();
        this.fcr = enable ? b & (FCR_ENABLE | FCR_TRIGGER_MASK) : 0;
        break;
      }
      case UART_LCR:
        this.lcr = b;
        break;
      case UART_MCR:
        this.mcr = b & 0x1f;
        break;
      case UART_SCR:
        this.scr = b;
        break;
      default:
        // LSR, MSR: read only.
        break;
    }
    this.updateIrq();
  }

  // ---- State ----

  save(): Uart16550State {
    const rx: number[] = [];
    for (let i = 0; i < this.rxCount; i++) rx.push(this.rxBuf[(this.rxHead + i) % UART_FIFO_SIZE]!);
    return {
      ier: this.ier,
      lcr: this.lcr,
      mcr: this.mcr,
      fcr: this.fcr,
      lsrErr: this.lsrErr,
      scr: this.scr,
      dll: this.dll,
      dlm: this.dlm,
      thrPending: this.thrPending,
      rx,
    };
  }

  restore(state: unknown): RestoreResult {
    if (!isRecord(state)) return { ok: false, error: 'uart16550: state is not an object' };
    for (const k of ['ier', 'lcr', 'mcr', 'fcr', 'lsrErr', 'scr', 'dll', 'dlm'] as const) {
      if (!isIntIn(state[k], 0, 0xff)) return { ok: false, error: `uart16550: field ${k} is not a byte` };
    }
    if (typeof state.thrPending !== 'boolean') return { ok: false, error: 'uart16550: field thrPending is not a boolean' };
    if (!isIntArray(state.rx, -1, 0, 0xff) || state.rx.length > UART_FIFO_SIZE) {
      return { ok: false, error: `uart16550: field rx is not an array of at most ${UART_FIFO_SIZE} bytes` };
    }
    const s = state as unknown as Uart16550State;
    this.ier = s.ier & 0x0f;
    this.lcr = s.lcr;
    this.mcr = s.mcr & 0x1f;
    this.fcr = s.fcr & FCR_ENABLE ? s.fcr & (FCR_ENABLE | FCR_TRIGGER_MASK) : 0;
    this.lsrErr = s.lsrErr & LSR_ERR_ANY;
    this.scr = s.scr;
    this.dll = s.dll;
    this.dlm = s.dlm;
    this.thrPending = s.thrPending;
    this.rxClear();
    for (const b of s.rx.slice(0, this.rxCapacity())) this.rxPush(b);
    this.updateIrq(true);
    return { ok: true };
  }

  // ---- Internals ----

  private rxCapacity(): number {
    return this.fcr & FCR_ENABLE ? UART_FIFO_SIZE : 1;
  }

  private rxPush(b: number): void {
    this.rxBuf[(this.rxHead + this.rxCount) % UART_FIFO_SIZE] = b;
    this.rxCount++;
  }

  private rxPop(): number {
    if (this.rxCount === 0) return 0;
    const b = this.rxBuf[this.rxHead]!;
    this.rxHead = (this.rxHead + 1) % UART_FIFO_SIZE;
    this.rxCount--;
    return b;
  }

  private rxClear(): void {
    this.rxHead = 0;
    this.rxCount = 0;
  }

  private transmit(b: number): void {
    this.thrPending = false;
    if (this.mcr & MCR_LOOP) {
      // Loopback: the byte comes back on the receive side.
      if (this.rxCount < this.rxCapacity()) this.rxPush(b);
      else this.lsrErr |= LSR_OE;
    } else {
      this.onOutput(b);
    }
    // Sent at once: THR is empty again, which is a new THRE event.
    this.thrPending = true;
  }

  private lsr(): number {
    return (this.rxCount > 0 ? LSR_DR : 0) | LSR_THRE | LSR_TEMT | this.lsrErr;
  }

  private msr(): number {
    if (this.mcr & MCR_LOOP) {
      // Loopback wires the modem control outputs back to the status inputs.
      return (
        (this.mcr & MCR_RTS ? MSR_CTS : 0) |
        (this.mcr & MCR_DTR ? MSR_DSR : 0) |
        (this.mcr & MCR_OUT1 ? MSR_RI : 0) |
        (this.mcr & MCR_OUT2 ? MSR_DCD : 0)
      );
    }
    return MSR_DCD | MSR_DSR | MSR_CTS;
  }

  /** The highest-priority active interrupt source, as IIR bits 3:0. */
  private currentIir(): number {
    const ier = this.ier;
    if (ier & IER_RLSI && this.lsrErr & LSR_ERR_ANY) return IIR_RLSI;
    if (ier & IER_RDI && this.rxCount > 0) {
      if (!(this.fcr & FCR_ENABLE)) return IIR_RDI;
      // In FIFO mode data below the trigger level is reported by the character
      // timeout; it fires at once here since the host delivers whole bursts.
      return this.rxCount >= RX_TRIGGER[(this.fcr >> 6) & 3]! ? IIR_RDI : IIR_CTI;
    }
    if (ier & IER_THRI && this.thrPending) return IIR_THRI;
    // Modem status never changes outside loopback, so no delta bits: no MSI source.
    return IIR_NO_INT;
  }

  private updateIrq(force = false): void {
    const level = this.currentIir() !== IIR_NO_INT;
    if (level !== this.irqLevel || force) {
      this.irqLevel = level;
      this.irq?.(level);
    }
  }
}
