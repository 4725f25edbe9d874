// A warm worker: one VM worker thread started ahead of need, its modules loaded
// and the CPU core compiled, waiting for a VM (the daemon keeps one). A start
// or restore that takes it skips the thread's start-up, which was most of a
// restore's time inside the daemon; a new one is started in the background.
// Memory: one idle worker thread (its JS heap and the loaded modules), about
// the size of a VM's worker without guest RAM; the core it prepares for the
// next VM (the size of the last one) reserves that VM's linear memory but
// touches none of it. See docs/snapshot-format.md.

import { Worker, type ResourceLimits, type TransferListItem } from 'node:worker_threads';
import type { WarmWorkerData } from './warm-up.js';

/** After a take, the next warm worker starts this much later: the VM that took one has its start-up to itself first. */
const REFILL_DELAY_MS = 2000;

export class WarmWorkers {
  private ready: Worker | null = null;
  /** Guest RAM of the last VM that took a worker: the next one prepares a core of that size (most starts repeat a size). */
  private expectMiB: number | undefined;
  private refillTimer: NodeJS.Timeout | null = null;
  private closed = false;

  /**
   * @param workerUrl the VM worker (worker.js)
   * @param wasmPath the CPU core
   * @param resourceLimits the heap limits every VM worker gets; a VM that asks for others gets a new worker
   */
  constructor(
    private readonly workerUrl: URL,
    private readonly wasmPath: string,
    private readonly resourceLimits: ResourceLimits,
  ) {
    this.fill();
  }

  /**
   * The warm worker, if one is ready for these limits (the caller posts its VM:
   * handOver()). `memMiB`: the VM's guest RAM, which the next warm worker
   * prepares a core for.
   */
  take(workerUrl: URL, resourceLimits: ResourceLimits | undefined, memMiB?: number): Worker | null {
    if (memMiB !== undefined && Number.isInteger(memMiB) && memMiB > 0) this.expectMiB = memMiB;
    if (this.closed || workerUrl.href !== this.workerUrl.href || !sameLimits(resourceLimits, this.resourceLimits)) return null;
    const w = this.ready;
    this.ready = null;
    if (w) {
      w.removeAllListeners('exit').removeAllListeners('error');
      w.ref();
    }
    this.refillTimer ??= setTimeout(() => {
      this.refillTimer = null;
      this.fill();
    }, REFILL_DELAY_MS).unref();
    return w;
  }

  /** Stop the waiting worker, start no more. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.refillTimer) clearTimeout(this.refillTimer);
    this.refillTimer = null;
    const w = this.ready;
    this.ready = null;
    if (w) await w.terminate();
  }

  private fill(): void {
    if (this.closed || this.ready) return;
    let w: Worker;
    try {
      const workerData: WarmWorkerData = { warm: true, wasmPath: this.wasmPath, ...(this.expectMiB !== undefined ? { prepareMiB: this.expectMiB } : {}) };
      w = new Worker(this.workerUrl, { workerData, resourceLimits: this.resourceLimits });
    } catch {
      return; // VMs start cold then
    }
    // A waiting worker must not keep the process alive, and one that dies is simply not used.
    w.unref();
    const lost = () => {
      if (this.ready === w) this.ready = null;
    };
    w.on('exit', lost).on('error', lost);
    this.ready = w;
  }
}

/** Give a taken warm worker its VM (the WorkerInit a new worker would get as workerData). */
export function handOver(w: Worker, init: object, transferList: readonly TransferListItem[]): void {
  w.postMessage({ type: 'init', init }, [...transferList]);
}

function sameLimits(a: ResourceLimits | undefined, b: ResourceLimits): boolean {
  const keys = ['maxOldGenerationSizeMb', 'maxYoungGenerationSizeMb', 'codeRangeSizeMb', 'stackSizeMb'] as const;
  return keys.every((k) => (a?.[k] ?? undefined) === (b[k] ?? undefined));
}
