// virtio-net: transmit chains (headers, checksum and segmentation offload) and
// receive of host frames into guest buffers (mergeable or not).
import { VirtioNet, type NicPort } from '../../src/devices/virtio/net.js';
import { check } from '../lib/expect.js';
import { runVirtioProgram } from '../lib/virtio-harness.js';

export function fuzz(data: Buffer): void {
  runVirtioProgram(data, () => {
    const inbound: Uint8Array[] = [];
    const port: NicPort = {
      send: (frame, length) => {
        // The port copies exactly `length` bytes out of the slices: they must hold them.
        let n = 0;
        for (const f of frame) n += f.length;
        check(n === length, `send: ${length} bytes claimed but the slices hold ${n}`);
        return true;
      },
      peek: () => inbound[0] ?? null,
      consume: () => void inbound.shift(),
    };
    // As the machine builds it: transmit chains are served by poll() (a slice's end), not inside the notification.
    const device = new VirtioNet({ mac: new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x56]), port, deferTransmit: true });
    return {
      device,
      hostEvent: (b) => {
        if (b.bool()) device.poll(); // also sends what the guest queued
        else inbound.push(b.chunk(9000).slice());
      },
    };
  });
}
