// The host side of one virtual NIC. A backend lives on the owner's thread (CLI,
// a VM's own process) or a VM's NIC I/O thread (the daemon's thread VMs,
// nic-thread.ts), never in the VM's worker: host sockets need an event loop, and
// the worker does not return to its event loop while the guest runs. Frames travel
// between the worker's virtio-net device and the backend through shared rings
// (frame-ring.ts); the backend only sees whole Ethernet frames without the
// virtio-net header.

/** Counters every backend keeps (shown by --stats and the daemon). */
export interface NetCounters {
  /** Frames and bytes the backend took from the guest. */
  rxFromGuestFrames: number;
  rxFromGuestBytes: number;
  /** Frames and bytes the backend delivered toward the guest. */
  txToGuestFrames: number;
  txToGuestBytes: number;
  /** Frames from the guest that were malformed, oversized or refused, and dropped. */
  dropped: number;
}

export interface NetBackend {
  /** Short description for logs and stats, e.g. "user 10.0.2.15/24". */
  readonly description: string;
  /**
   * Start delivering frames for the guest through `toGuest`. The callee may keep
   * nothing: `toGuest` copies the frame before returning.
   */
  start(toGuest: (frame: Uint8Array) => void): void;
  /**
   * A frame the guest sent. The buffer is only valid during the call: copy what
   * must outlive it. Must never throw because of the frame's contents.
   */
  fromGuest(frame: Uint8Array): void;
  counters(): NetCounters;
  /** Close host sockets and timers. */
  close(): Promise<void>;
}

/** Largest and smallest Ethernet frames (with one VLAN tag, without FCS) a backend takes from a guest. */
export const MAX_ETH_FRAME = 1518;
export const MIN_ETH_FRAME = 14;

/** Count a frame from the guest; false (and a drop counted) when its size cannot be an Ethernet frame. */
export function countFromGuest(c: NetCounters, frame: Uint8Array): boolean {
  if (frame.length < MIN_ETH_FRAME || frame.length > MAX_ETH_FRAME) {
    c.dropped++;
    return false;
  }
  c.rxFromGuestFrames++;
  c.rxFromGuestBytes += frame.length;
  return true;
}

export function emptyCounters(): NetCounters {
  return { rxFromGuestFrames: 0, rxFromGuestBytes: 0, txToGuestFrames: 0, txToGuestBytes: 0, dropped: 0 };
}
