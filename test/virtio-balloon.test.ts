// virtio-balloon at device level: a fake driver inflates and deflates pages,
// writes `actual`, sends statistics and free page reports.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtioBalloon, VIRTIO_BALLOON_F_REPORTING, VIRTIO_BALLOON_F_STATS_VQ } from '../src/devices/virtio/balloon.js';
import { VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_INTERRUPT_STATUS, VIRTIO_MMIO_INTERRUPT_ACK } from '../src/devices/virtio/mmio.js';
import { VIRTQ_DESC_F_WRITE as WRITE } from '../src/devices/virtio/queue.js';
import { bringUp, BASE, DESC, AVAIL, USED } from './fixtures/virtio-driver.js';

const SIZE = 8;
const PAGES = BASE + 0x40000; // guest pages the tests put in the balloon (bringUp's rings sit below)
const BUF = BASE + 0x30000;

function setup() {
  const clock = { t: 0 };
  const dev = new VirtioBalloon({ clock: () => clock.t, statsIntervalMs: 1000 });
  const h = bringUp(dev, SIZE, { featuresLo: (1 << VIRTIO_BALLOON_F_STATS_VQ) | (1 << VIRTIO_BALLOON_F_REPORTING) });
  const r = h.ram;
  /** Offer one single-descriptor chain on queue q. */
  const offer = (q: number, addr: number, len: number, flags: number) => {
    const avail = AVAIL + q * 0x4000;
    const idx = r.u16(avail + 2);
    const head = idx % SIZE;
    r.setDesc(DESC + q * 0x4000, head, addr, len, flags);
    r.setU16(avail + 4 + 2 * head, head);
    r.setU16(avail + 2, (idx + 1) & 0xffff);
    h.notify(q);
  };
  const used = (q: number) => r.u16(USED + q * 0x4000 + 2);
  return { clock, dev, h, r, offer, used };
}

test('target, inflate (pages with data are zeroed), actual, deflate', () => {
  const { dev, h, r, offer, used } = setup();
  dev.setTargetPages(3);
  assert.equal(h.transport.read(VIRTIO_MMIO_INTERRUPT_STATUS, 4) & 2, 2, 'config change interrupt');
  h.transport.write(VIRTIO_MMIO_INTERRUPT_ACK, 4, 2);
  assert.equal(h.transport.read(VIRTIO_MMIO_CONFIG, 4), 3, 'num_pages');
  r.ram.fill(0xaa, PAGES - BASE, PAGES - BASE + 4096); // first page holds data, the others are zero
  for (let i = 0; i < 3; i++) r.dv.setUint32(BUF - BASE + 4 * i, PAGES / 4096 + i, true);
  r.dv.setUint32(BUF - BASE + 12, 0xffff_fff0, true); // outside RAM: skipped
  offer(0, BUF, 16, 0);
  assert.equal(used(0), 1);
  assert.equal(r.ram[PAGES - BASE], 0, 'inflated page zeroed');
  h.transport.write(VIRTIO_MMIO_CONFIG + 4, 4, 3);
  let s = dev.stats();
  assert.equal(s.actualPages, 3);
  assert.equal(s.inflatedPages, 3);
  assert.equal(s.scrubbedBytes, 4096);
  assert.equal(s.releasedToHostBytes, 0);
  offer(1, BUF, 8, 0);
  assert.equal(used(1), 1);
  s = dev.stats();
  assert.equal(s.inflatedPages, 1);
  assert.equal(s.pagesDeflated, 2);
  assert.equal(s.statsQueue, true);
  assert.equal(s.freePageReporting, true);
});

test('statistics: the buffer is kept until the device asks again (by interval or on request)', () => {
  const { clock, dev, r, offer, used } = setup();
  r.dv.setUint16(BUF - BASE, 4, true); // memFree
  r.dv.setBigUint64(BUF - BASE + 2, 1000n, true);
  r.dv.setUint16(BUF - BASE + 10, 5, true); // memTotal
  r.dv.setBigUint64(BUF - BASE + 12, 5000n, true);
  offer(2, BUF, 20, 0);
  assert.equal(used(2), 0, 'held');
  assert.deepEqual(dev.stats().guest, { memFree: 1000, memTotal: 5000 });
  assert.equal(dev.nextDeadline(), 1000);
  clock.t = 999;
  dev.poll();
  assert.equal(used(2), 0);
  clock.t = 1000;
  dev.poll();
  assert.equal(used(2), 1, 'returned: the driver refreshes and sends it again');
  assert.equal(dev.nextDeadline(), null);
  offer(2, BUF, 20, 0);
  dev.requestStats();
  assert.equal(used(2), 2);
});

test('free page reports are zeroed where they hold data and counted', () => {
  const { dev, r, offer, used } = setup();
  r.ram.fill(0x55, PAGES - BASE + 4096, PAGES - BASE + 8192);
  offer(3, PAGES, 4 * 4096, WRITE);
  assert.equal(used(3), 1);
  assert.equal(r.ram[PAGES - BASE + 4096], 0);
  const s = dev.stats();
  assert.equal(s.reports, 1);
  assert.equal(s.reportedBytes, 4 * 4096);
  assert.equal(s.scrubbedBytes, 4096);
});

test('a reset empties the balloon; the target stays', () => {
  const { dev, h } = setup();
  dev.setTargetPages(5);
  h.transport.write(VIRTIO_MMIO_CONFIG + 4, 4, 5);
  h.transport.write(0x70, 4, 0); // status 0: reset
  assert.equal(dev.stats().actualPages, 0);
  assert.equal(dev.targetPages, 5);
  assert.throws(() => dev.setTargetPages(-1), RangeError);
});

test('oversized page-number buffers put the device in needs-reset instead of being copied', () => {
  const { h, offer } = setup();
  offer(0, BASE + 0x40000, 0x80000, 0);
  assert.equal(h.transport.needsReset, true);
  assert.match(h.logs.join('\n'), /inflate buffer of 524288 bytes/);
});
