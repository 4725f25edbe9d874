// virtio-rng: entropy requests of any shape.
import { VirtioRng } from '../../src/devices/virtio/rng.js';
import { runVirtioProgram } from '../lib/virtio-harness.js';

export function fuzz(data: Buffer): void {
  runVirtioProgram(data, () => ({ device: new VirtioRng((n) => new Uint8Array(n).fill(0xa5)) }));
}
