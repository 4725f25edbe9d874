// End to end, one deterministic boot of the default guest through VmHandle:
// - a raw data disk limited to RATE bytes/s: the guest reads it with dd and the
//   rate, measured in guest time (/proc/uptime around dd, and the limiter's own
//   accounting), is within 15% of the limit;
// - the limit is raised on the running VM and the next dd follows the new one;
// - virtio-balloon: a target set on the running VM is reached (`actual` in the
//   device stats), the guest's MemTotal drops by that much and comes back after
//   the target returns to 0.
// Never a wall-clock assertion: in deterministic mode guest time is the
// instruction count, whatever the host's load.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { VmHandle, defaultWasmPath } from '../src/vm/vm-handle.js';
import { ensureDefaultGuest } from '../src/image/default-guest.js';
import { perSecond } from '../src/devices/rate-limiter.js';
import { budget } from './lib/budget.js';

const MIB = 1024 * 1024;
const RATE = 4 * MIB;
const RATE2 = 8 * MIB;
const BALLOON_MIB = 64;

const dir = mkdtempSync(join(tmpdir(), 'tsvisor-limits-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('disk rate limit, runtime change, and the balloon', { timeout: budget(240_000) }, async (t) => {
  const guest = await ensureDefaultGuest({});
  const img = join(dir, 'data.img');
  writeFileSync(img, '');
  truncateSync(img, 64 * MIB);
  const vm = new VmHandle({
    kernel: guest.kernel, initrd: guest.initrd, append: 'console=ttyS0', memMiB: 256,
    deterministic: true, wasmPath: defaultWasmPath(),
    disks: [{ path: img, format: 'raw', limits: { bandwidth: perSecond(RATE) } }],
    balloon: { statsIntervalMs: 500 },
  });
  let out = '';
  const warnings: string[] = [];
  vm.on('output', (b) => (out += Buffer.from(b).toString('latin1')));
  vm.on('warning', (w) => warnings.push(w));
  const waitFor = async (what: string, re: RegExp, from = 0, ms = 150_000): Promise<RegExpExecArray> => {
    const end = Date.now() + ms;
    for (;;) {
      const m = re.exec(out.slice(from));
      if (m) return m;
      if (!vm.running) throw new Error(`VM ended while waiting for ${what}\n${out.slice(-2000)}`);
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${out.slice(-2000)}`);
      await delay(50);
    }
  };
  /** Run a shell command; its output is what comes between two markers the shell computes. */
  let seq = 0;
  const sh = async (cmd: string): Promise<string> => {
    const n = ++seq;
    const from = out.length;
    vm.sendInput(Buffer.from(`echo B-$((${n}*7))-; ${cmd}; echo E-$((${n}*7))-\n`));
    const m = await waitFor(cmd, new RegExp(`B-${n * 7}-\\r?\\n([\\s\\S]*?)E-${n * 7}-`), from);
    return m[1];
  };
  const uptime = (s: string) => s.match(/^(\d+\.\d+) /gm)!.map((x) => Number(x.trim()));
  /** Read `count` MiB at `skipMiB` and return guest seconds and bytes moved by the device. */
  const timedRead = async (skipMiB: number, count: number) => {
    const before = (await vm.deviceStats()).disks[0];
    const text = await sh(`cat /proc/uptime; dd if=/dev/vda of=/dev/null bs=1M count=${count} skip=${skipMiB} 2>/dev/null; cat /proc/uptime`);
    const [t1, t2] = uptime(text);
    const afterStats = (await vm.deviceStats()).disks[0];
    return { secs: t2 - t1, bytes: afterStats.readBytes - before.readBytes, throttledMs: afterStats.throttledMs - before.throttledMs };
  };

  await assert.rejects(vm.setBalloonTarget(1), /not running/);
  vm.start();
  try {
    await waitFor('the shell', /~ # /);

    // The bucket starts full (RATE bytes, as Firecracker's does), so the steady rate
    // is what came after the first bucketful.
    const a = await timedRead(0, 12);
    assert.ok(a.bytes >= 12 * MIB, `device read ${a.bytes} bytes`);
    const rateA = (a.bytes - RATE) / a.secs;
    assert.ok(Math.abs(rateA / RATE - 1) < 0.15, `rate ${(rateA / MIB).toFixed(2)} MiB/s in guest time, limit ${RATE / MIB} (${a.bytes} bytes in ${a.secs} s)`);
    t.diagnostic(`limit ${RATE / MIB} MiB/s: ${a.bytes} bytes in ${a.secs.toFixed(2)} guest s, steady ${(rateA / MIB).toFixed(3)} MiB/s, throttled ${a.throttledMs.toFixed(0)} ms`);
    assert.ok(a.throttledMs > 1000, `throttled ${a.throttledMs} ms`);

    // A new limit on the running VM: the bucket starts full again at the new size.
    await vm.setDiskLimits(0, { bandwidth: perSecond(RATE2) });
    const st = await vm.deviceStats();
    assert.equal(st.disks[0].limits.bandwidth?.size, RATE2);
    const b = await timedRead(16, 24);
    const rateB = (b.bytes - RATE2) / b.secs;
    assert.ok(Math.abs(rateB / RATE2 - 1) < 0.15, `rate ${(rateB / MIB).toFixed(2)} MiB/s after the change, limit ${RATE2 / MIB}`);
    t.diagnostic(`limit ${RATE2 / MIB} MiB/s: ${b.bytes} bytes in ${b.secs.toFixed(2)} guest s, steady ${(rateB / MIB).toFixed(3)} MiB/s`);
    await assert.rejects(vm.setDiskLimits(3, {}), /no disk 3/);
    await assert.rejects(vm.setDiskLimits(0, { ops: { size: -1, refillMs: 1000 } }), /size/);

    // Balloon: inflate by BALLOON_MIB, the guest's MemTotal follows; deflate returns it.
    const memTotal = async () => Number(/MemTotal:\s+(\d+) kB/.exec(await sh('grep MemTotal /proc/meminfo'))![1]);
    const total0 = await memTotal();
    await vm.setBalloonTarget(BALLOON_MIB);
    const pages = (BALLOON_MIB * MIB) / 4096;
    const settle = async (want: number) => {
      const end = Date.now() + 60_000;
      for (;;) {
        const s = (await vm.deviceStats()).balloon!;
        if (s.actualPages === want && s.inflatedPages === want) return s;
        if (Date.now() > end) throw new Error(`balloon stuck at ${s.actualPages} pages (want ${want})`);
        await delay(100);
      }
    };
    const inflated = await settle(pages);
    assert.equal(inflated.targetMiB, BALLOON_MIB);
    const total1 = await memTotal();
    t.diagnostic(`balloon ${BALLOON_MIB} MiB: MemTotal ${total0} -> ${total1} kB`);
    assert.equal(total0 - total1, BALLOON_MIB * 1024, `MemTotal ${total0} kB -> ${total1} kB`);
    // The guest's own statistics arrive on the stats queue.
    await vm.deviceStats(true);
    const end = Date.now() + 30_000;
    let g = (await vm.deviceStats()).balloon!.guest;
    while (!(g && g.memTotal && Math.abs(g.memTotal - total1 * 1024) < 1024 * 1024) && Date.now() < end) {
      await delay(200);
      g = (await vm.deviceStats()).balloon!.guest;
    }
    assert.ok(g && Math.abs(g.memTotal - total1 * 1024) < 1024 * 1024, `guest stats ${JSON.stringify(g)}`);
    assert.ok(g.memFree > 0 && g.memFree < g.memTotal);

    await vm.setBalloonTarget(0);
    const deflated = await settle(0);
    t.diagnostic(`balloon: ${deflated.pagesInflated} pages inflated, ${deflated.pagesDeflated} deflated, ${deflated.reports} free page reports (${deflated.reportedBytes} bytes), ${deflated.scrubbedBytes} bytes zeroed`);
    assert.equal(await memTotal(), total0, 'MemTotal is back');
  } finally {
    vm.sendInput(Buffer.from('poweroff -f\n'));
    const r = await Promise.race([vm.exited, delay(20_000, null, { ref: false })]);
    if (!r) await vm.stop();
  }
  assert.deepEqual(warnings.filter((w) => /needs reset/.test(w)), [], 'no device needed a reset');
});
