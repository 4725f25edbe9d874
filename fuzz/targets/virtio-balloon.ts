// virtio-balloon: inflate/deflate page lists, statistics, free page reports, and
// host-side target changes and timer polls in between.
import { VirtioBalloon } from '../../src/devices/virtio/balloon.js';
import { check } from '../lib/expect.js';
import { runVirtioProgram } from '../lib/virtio-harness.js';

export function fuzz(data: Buffer): void {
  let now = 0;
  runVirtioProgram(data, () => {
    const device = new VirtioBalloon({
      clock: () => now,
      statsIntervalMs: 100,
      release: (ram, off, len) => {
        check(off >= 0 && len >= 0 && off % 4096 === 0 && len % 4096 === 0 && off + len <= ram.length, `release outside RAM or not page-aligned: ${off}+${len}`);
        ram.fill(0, off, off + len);
        return len;
      },
    });
    return {
      device,
      hostEvent: (b) => {
        switch (b.u8() % 4) {
          case 0: device.setTargetPages(b.u32() % 64); break;
          case 1: device.requestStats(); break;
          case 2: now += b.u16(); device.poll(); break;
          case 3: {
            const s = device.stats();
            check(s.inflatedPages >= 0 && s.inflatedPages <= 16, `inflated page count ${s.inflatedPages} beyond RAM (16 pages)`);
            break;
          }
        }
      },
    };
  });
}
