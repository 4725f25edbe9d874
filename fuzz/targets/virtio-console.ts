// virtio-console: guest output chains and host input delivered into receive buffers.
import { VirtioConsole } from '../../src/devices/virtio/console.js';
import { runVirtioProgram } from '../lib/virtio-harness.js';

export function fuzz(data: Buffer): void {
  runVirtioProgram(data, () => {
    const device = new VirtioConsole(() => {});
    return { device, hostEvent: (b) => void device.pushInput(b.bytes(b.u8())) };
  });
}
