// Network throughput and request latency over user-mode networking: the default
// guest under QEMU (-netdev user + virtio-net-device) and under tsvisor
// (--net user), one after the other, same kernel and initramfs. All traffic is
// between the guest and servers this benchmark starts on 127.0.0.1.
//   guest->host: the guest pipes N MiB from /dev/zero into nc to a host sink
//   host->guest: the guest's nc reads N MiB from a host source
//   latency:     the host makes sequential HTTP requests (a new connection each)
//                through a hostfwd port to the guest's busybox httpd
// Times are taken on the host side, from the first byte to the last.
//
//   npm run bench:net -- [--runs N] [--mib N] [--requests N] [--json] [--emulators qemu,tsvisor]

import http from 'node:http';
import net from 'node:net';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { ensureDefaultGuest } from '../src/image/default-guest.js';
import { parseStats, perUnit } from './lib/tsvisor-stats.js';
import { ConsoleSession } from './lib/console.js';
import { medianBy, table } from './lib/format.js';
import { TSVISOR_BIN } from './lib/guest-build.js';
import { cpuModel, qemuVersion } from './lib/host.js';
import { killAll } from './lib/proc.js';

type Emulator = 'qemu' | 'tsvisor';
const MEM = '512M';
const APPEND = 'console=ttyS0';

interface Result {
  emulator: Emulator;
  upMiBps: number | null;
  downMiBps: number | null;
  latencyMs: number | null;
  error: string | null;
  /** tsvisor: what each direction cost per MiB (from --stats reports around it), and the NIC's offload counters. */
  costs: { up: Record<string, number> | null; down: Record<string, number> | null; http: Record<string, number> | null; nic: string | null };
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
}

/** A sink that times the bytes of its one connection; resolves with MiB/s. */
async function sink(bytes: number): Promise<{ port: number; result: Promise<number>; close(): void }> {
  let done!: (v: number) => void;
  const result = new Promise<number>((r) => (done = r));
  const server = net.createServer((s) => {
    let got = 0;
    let t0 = 0;
    s.on('data', (b) => {
      if (got === 0) t0 = performance.now();
      got += b.length;
      if (got >= bytes) done(bytes / 1048576 / ((performance.now() - t0) / 1000));
    });
    s.on('error', () => {});
  });
  const port = await listen(server);
  return { port, result, close: () => server.close() };
}

/** A source that sends `bytes` to its one connection and times until the guest closes. */
async function source(bytes: number): Promise<{ port: number; result: Promise<number>; close(): void }> {
  let done!: (v: number) => void;
  const result = new Promise<number>((r) => (done = r));
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const server = net.createServer((s) => {
    const t0 = performance.now();
    let sent = 0;
    const pump = (): void => {
      while (sent < bytes) {
        const n = Math.min(chunk.length, bytes - sent);
        sent += n;
        if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void s.once('drain', pump);
      }
      s.end();
    };
    s.on('close', () => done(bytes / 1048576 / ((performance.now() - t0) / 1000)));
    s.on('error', () => {});
    pump();
  });
  const port = await listen(server);
  return { port, result, close: () => server.close() };
}

function get(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/index.html', agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve());
      })
      .on('error', reject);
  });
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  const p = await listen(s);
  await new Promise((r) => s.close(r));
  return p;
}

async function runOne(emulator: Emulator, kernel: string, initrd: string, mib: number, requests: number, costs: boolean, say: (s: string) => void): Promise<Result> {
  const r: Result = { emulator, upMiBps: null, downMiBps: null, latencyMs: null, error: null, costs: { up: null, down: null, http: null, nic: null } };
  const fwd = await freePort();
  const [cmd, args] =
    emulator === 'qemu'
      ? ['qemu-system-riscv64', ['-M', 'virt', '-m', MEM, '-nographic', '-kernel', kernel, '-initrd', initrd, '-append', APPEND,
          '-netdev', `user,id=n0,hostfwd=tcp:127.0.0.1:${fwd}-:80`, '-device', 'virtio-net-device,netdev=n0']]
      : [process.execPath, [TSVISOR_BIN, 'run', '--kernel', kernel, '--initrd', initrd, '--append', APPEND, '--mem', MEM,
          // The guest talks to the host's loopback through the gateway, as QEMU's user network allows by default.
          '--net', `user,host-loopback=on,hostfwd=tcp:127.0.0.1:${fwd}-:80`, ...(costs ? ['--stats'] : [])]];
  const s = new ConsoleSession(cmd, args as string[]);
  const bytes = mib * 1048576;
  try {
    await s.waitForShell(300_000);
    await s.run('i=0; until ip addr show eth0 | grep -q 10.0.2.15 || [ $i -gt 100 ]; do sleep 0.2; i=$((i+1)); done; ip addr show eth0 | grep inet', 60_000);
    // --costs: counters around each part (--stats makes translated code count its TLB lookups: not for the speed figures).
    const tsv = emulator === 'tsvisor' && costs;
    /** tsvisor's counters around `work`, per `units`. */
    const measured = async (units: number, work: () => Promise<void>): Promise<Record<string, number> | null> => {
      const before = tsv ? parseStats(await s.tsvisorStats()) : null;
      const t0 = performance.now();
      await work();
      const wallMs = performance.now() - t0;
      if (!before) return null;
      const text = await s.tsvisorStats();
      const after = parseStats(text);
      r.costs.nic = /^\s+virtio-net\S*\s+(\d.*)$/m.exec(text)?.[1] ?? r.costs.nic;
      // busyShare: how much of the time the worker spent running the guest (not idle in WFI).
      return after ? { ...perUnit(before, after, units), busyShare: (after.sliceMs - before.sliceMs) / wallMs } : null;
    };
    const up = await sink(bytes);
    r.costs.up = await measured(mib, () => s.run(`dd if=/dev/zero bs=65536 count=${mib * 16} 2>/dev/null | nc 10.0.2.2 ${up.port}`, 600_000).then(() => {}));
    r.upMiBps = await Promise.race([up.result, new Promise<number>((_, rej) => setTimeout(() => rej(new Error('guest->host: not all bytes arrived')), 10_000))]);
    up.close();
    say(`  ${emulator}: guest->host ${r.upMiBps.toFixed(2)} MiB/s`);
    const down = await source(bytes);
    r.costs.down = await measured(mib, () => s.run(`nc 10.0.2.2 ${down.port} > /dev/null`, 600_000).then(() => {}));
    r.downMiBps = await down.result;
    down.close();
    say(`  ${emulator}: host->guest ${r.downMiBps.toFixed(2)} MiB/s`);
    await s.run('mkdir -p /www && echo ok > /www/index.html && httpd -p 80 -h /www', 30_000);
    await get(fwd); // warm up: first connection, httpd paged in
    r.costs.http = await measured(requests, async () => {
      const t0 = performance.now();
      for (let i = 0; i < requests; i++) await get(fwd);
      r.latencyMs = (performance.now() - t0) / requests;
    });
    say(`  ${emulator}: HTTP request through hostfwd ${(r.latencyMs ?? 0).toFixed(1)} ms`);
    await s.poweroff();
  } catch (e) {
    r.error = (e as Error).message;
    say(`  ${emulator}: ${r.error}`);
    await s.kill();
  }
  return r;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '1' },
      mib: { type: 'string', default: '32' },
      requests: { type: 'string', default: '50' },
      json: { type: 'boolean', default: false },
      emulators: { type: 'string', default: 'qemu,tsvisor' },
      costs: { type: 'boolean', default: false },
    },
  });
  const runs = Number(values.runs);
  const mib = Number(values.mib);
  const requests = Number(values.requests);
  const emulators = values.emulators!.split(',') as Emulator[];
  const say = (t: string) => process.stderr.write(t + '\n');
  const guest = await ensureDefaultGuest({ progress: false, log: (t) => say(t.replace(/\n$/, '')) });
  const results: Result[] = [];
  for (let run = 1; run <= runs; run++) {
    for (const e of emulators) {
      say(`${e}, run ${run}/${runs}`);
      results.push(await runOne(e, guest.kernel, guest.initrd, mib, requests, values.costs === true, say));
    }
  }
  const med = (e: Emulator, k: 'upMiBps' | 'downMiBps' | 'latencyMs') => medianBy(results.filter((r) => r.emulator === e && r[k] !== null), (r) => r[k]!)?.[k] ?? null;
  const rows: string[][] = [['measure', 'QEMU', 'tsvisor', 'tsvisor/QEMU']];
  const fmt = (v: number | null, d = 2) => (v === null ? '-' : v.toFixed(d));
  const ratio = (t: number | null, q: number | null, inverse = false) => (t && q ? `${(inverse ? q / t : t / q).toFixed(3)}x` : '-');
  const up = [med('qemu', 'upMiBps'), med('tsvisor', 'upMiBps')];
  const down = [med('qemu', 'downMiBps'), med('tsvisor', 'downMiBps')];
  const lat = [med('qemu', 'latencyMs'), med('tsvisor', 'latencyMs')];
  rows.push(['guest->host TCP MiB/s', fmt(up[0]), fmt(up[1]), ratio(up[1], up[0])]);
  rows.push(['host->guest TCP MiB/s', fmt(down[0]), fmt(down[1]), ratio(down[1], down[0])]);
  rows.push(['HTTP request ms (speed ratio)', fmt(lat[0], 1), fmt(lat[1], 1), ratio(lat[1], lat[0], true)]);
  const host = { date: new Date().toISOString().slice(0, 10), cpu: cpuModel(), cores: cpus().length, node: process.version, qemu: qemuVersion() };
  if (values.json) {
    process.stdout.write(JSON.stringify({ benchmark: 'net', runs, mib, requests, host, results }, null, 2) + '\n');
  } else {
    process.stdout.write(
      [
        '',
        `User-mode networking, ${mib} MiB each way, ${requests} HTTP requests${runs > 1 ? `, median of ${runs} runs` : ''}`,
        'QEMU: -netdev user + virtio-net-device; tsvisor: --net user',
        '',
        table(rows, new Set([1, 2, 3])),
        '',
        ...results.flatMap((x) => {
          const c = x.costs;
          const f = (what: string, unit: string, v: Record<string, number> | null) =>
            v ? [`tsvisor ${what}: per ${unit} ${Math.round(v.instructions)} guest instructions (${(v.translatedShare * 100).toFixed(1)}% translated), ` +
              `${v.mmio.toFixed(1)} MMIO exits, ${v.notifies.toFixed(1)} notifications, ${v.interrupts.toFixed(1)} interrupts raised, ` +
              `${Math.round(v.syscalls)} guest system calls; guest running ${(v.busyShare * 100).toFixed(0)}% of the time`] : [];
          return [...f('guest->host', 'MiB', c.up), ...f('host->guest', 'MiB', c.down), ...f('HTTP', 'request', c.http), ...(c.nic ? [`tsvisor NIC: ${c.nic}`] : [])];
        }),
        `date: ${host.date}; cpu: ${host.cpu} (${host.cores} cores); node ${host.node}; ${host.qemu}`,
        '',
      ].join('\n'),
    );
  }
  process.exitCode = results.some((r) => r.error) ? 1 : 0;
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:net: ${e instanceof Error ? e.message : String(e)}\n`);
  killAll();
  process.exit(1);
});
