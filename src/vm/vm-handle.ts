// The owner (main-thread) side of one VM: starts its worker, carries console bytes
// both ways, asks it to stop, and reports how it ended.

import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Worker, type ResourceLimits } from 'node:worker_threads';
import {
  createSharedControl,
  pushInput,
  readLive,
  requestPause,
  requestStatsReport,
  setCredit,
  type LiveCounters,
  requestStop,
  type SharedControl,
  type VmConfig,
  type WorkerMessage,
} from './protocol.js';

/** How a VM ended: the guest's exit status (poweroff = 0) and why. */
export interface VmExit {
  code: number;
  reason: string;
}

export interface VmHandleEvents {
  /** Bytes the guest wrote to its console. */
  output: [data: Uint8Array];
  /** A problem the worker reported (the VM may still exit on its own afterwards). */
  warning: [message: string];
  /** A statistics report (text), answering requestStats() and sent at exit when asked for. */
  stats: [text: string];
  /** The VM is gone; same value as `exited` resolves to. */
  exit: [result: VmExit];
}

export interface VmHandleOptions {
  /** Worker script to run instead of the real one (tests). */
  workerUrl?: URL;
  /** How long stop() waits for the worker to finish before terminating it (ms). */
  stopTimeoutMs?: number;
  /** Retry interval for console input that did not fit the input ring (ms). */
  inputRetryMs?: number;
  /** Heap limits for the worker thread (the daemon isolates each VM's JS heap). */
  resourceLimits?: ResourceLimits;
}

/** Absolute path of the compiled CPU core, build/cpu.wasm in the repo. */
export function defaultWasmPath(): string {
  // This file runs as dist/src/vm/vm-handle.js; the repo root is three levels up.
  return fileURLToPath(new URL('../../../build/cpu.wasm', import.meta.url));
}

type State = 'new' | 'running' | 'stopping' | 'exited';

export class VmHandle extends EventEmitter<VmHandleEvents> {
  readonly config: VmConfig;
  /** Resolves once, when the VM has ended for whatever reason. Never rejects. */
  readonly exited: Promise<VmExit>;

  private readonly control: SharedControl;
  private readonly opts: Required<Omit<VmHandleOptions, 'workerUrl' | 'resourceLimits'>> & { workerUrl?: URL; resourceLimits?: ResourceLimits };
  private worker: Worker | null = null;
  private state: State = 'new';
  private resolveExit!: (r: VmExit) => void;
  private pending: Uint8Array[] = [];
  private retryTimer: NodeJS.Timeout | null = null;
  private killTimer: NodeJS.Timeout | null = null;
  private lastError: string | null = null;

  constructor(config: VmConfig, options: VmHandleOptions = {}) {
    super();
    this.config = config;
    this.control = createSharedControl();
    this.opts = {
      workerUrl: options.workerUrl,
      stopTimeoutMs: options.stopTimeoutMs ?? 2000,
      inputRetryMs: options.inputRetryMs ?? 5,
      resourceLimits: options.resourceLimits,
    };
    this.exited = new Promise<VmExit>((resolve) => {
      this.resolveExit = resolve;
    });
  }

  get running(): boolean {
    return this.state === 'running' || this.state === 'stopping';
  }

  /** Spawn the worker. Call once. */
  start(): void {
    if (this.state !== 'new') throw new Error('VmHandle.start() called twice');
    this.state = 'running';
    const url = this.opts.workerUrl ?? new URL('./worker.js', import.meta.url);
    let worker: Worker;
    try {
      worker = new Worker(url, {
        workerData: { config: this.config, control: this.control },
        resourceLimits: this.opts.resourceLimits,
      });
    } catch (e) {
      this.finish({ code: 1, reason: `cannot start the VM worker: ${errorText(e)}` });
      return;
    }
    this.worker = worker;
    worker.on('message', (msg: WorkerMessage) => this.onMessage(msg));
    worker.on('error', (err: unknown) => {
      this.finish({ code: 1, reason: `VM worker failed: ${errorText(err)}` });
    });
    worker.on('messageerror', (err: unknown) => {
      this.emit('warning', `unreadable message from the VM worker: ${errorText(err)}`);
    });
    worker.on('exit', (workerCode: number) => {
      if (this.state === 'stopping') {
        this.finish({ code: 0, reason: 'stopped' });
      } else {
        const why = this.lastError ?? `VM worker exited unexpectedly (code ${workerCode})`;
        this.finish({ code: 1, reason: why });
      }
    });
  }

  /** Queue bytes for the guest's console. Bytes that do not fit yet are retried. */
  sendInput(bytes: Uint8Array): void {
    if (this.state === 'exited' || bytes.length === 0) return;
    this.pending.push(bytes.slice());
    this.flushInput();
  }

  /**
   * Ask the VM to stop; terminate its worker if it has not finished within the
   * stop timeout. Resolves with the same value as `exited`.
   */
  stop(): Promise<VmExit> {
    if (this.state === 'new') {
      this.state = 'stopping';
      this.finish({ code: 0, reason: 'stopped before start' });
    } else if (this.state === 'running') {
      this.state = 'stopping';
      requestStop(this.control);
      this.killTimer = setTimeout(() => {
        this.killTimer = null;
        if (this.state !== 'exited' && this.worker) {
          void this.worker.terminate();
        }
      }, this.opts.stopTimeoutMs);
    }
    return this.exited;
  }

  private onMessage(msg: WorkerMessage): void {
    if (this.state === 'exited') return;
    switch (msg.type) {
      case 'console': {
        const data = msg.data instanceof Uint8Array ? msg.data : new Uint8Array(msg.data as ArrayLike<number>);
        this.emit('output', data);
        break;
      }
      case 'exit':
        this.finish({ code: msg.code, reason: msg.reason });
        // The worker is expected to end by itself; make sure it does.
        void this.worker?.terminate();
        break;
      case 'stats':
        this.emit('stats', msg.text);
        break;
      case 'error':
        this.lastError = msg.message;
        this.emit('warning', msg.message);
        break;
      default:
        this.emit('warning', `unknown message from the VM worker: ${JSON.stringify(msg)}`);
    }
  }

  /** Pause the guest (its worker sleeps; guest time in deterministic mode stands still). */
  pause(): void {
    if (this.running) requestPause(this.control, true);
  }

  resume(): void {
    if (this.running) requestPause(this.control, false);
  }

  /** Let the guest run until it has retired `instret` instructions in all; -1n removes the limit. */
  setCredit(instret: bigint): void {
    setCredit(this.control, instret);
  }

  /** The worker's live counters (instructions, host time used, run state, heartbeat). */
  live(): LiveCounters {
    return readLive(this.control);
  }

  /** End the worker now, without asking (a hung VM); `exit` follows with `reason`. */
  kill(reason: string): Promise<VmExit> {
    if (this.state === 'exited') return this.exited;
    this.lastError = reason;
    if (this.worker) {
      const w = this.worker;
      void w.terminate().then(() => this.finish({ code: 1, reason }));
    } else {
      this.finish({ code: 1, reason });
    }
    return this.exited;
  }

  /** Ask the worker for a statistics report (a 'stats' event follows). */
  requestStats(): void {
    if (this.running) requestStatsReport(this.control);
  }

  private flushInput(): void {
    if (this.retryTimer) return; // a retry is already scheduled
    while (this.pending.length > 0 && this.state !== 'exited') {
      const head = this.pending[0];
      const n = pushInput(this.control, head);
      if (n === head.length) {
        this.pending.shift();
      } else {
        this.pending[0] = head.subarray(n);
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          this.flushInput();
        }, this.opts.inputRetryMs);
        return;
      }
    }
  }

  private finish(result: VmExit): void {
    if (this.state === 'exited') return;
    this.state = 'exited';
    if (this.killTimer) clearTimeout(this.killTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.killTimer = this.retryTimer = null;
    this.pending = [];
    this.resolveExit(result);
    this.emit('exit', result);
  }
}

function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
