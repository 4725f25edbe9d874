// API latency of the daemon while one guest floods its console and its
// network (bench/lib/daemon-flood.ts): p50/p99 of sequential requests about
// another VM, before and during the flood.
//
//   npm run bench:daemon -- [--seconds N] [--json]

import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { runDaemonFlood } from './lib/daemon-flood.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '20' }, json: { type: 'boolean', default: false } } });
const seconds = Number(values.seconds);
if (!Number.isFinite(seconds) || seconds <= 0) {
  process.stderr.write('bench:daemon: --seconds must be a positive number\n');
  process.exit(2);
}
const r = await runDaemonFlood({ floodMs: seconds * 1000, baselineMs: 5000, log: (m) => process.stderr.write(`${m}\n`) });
if (values.json) {
  process.stdout.write(JSON.stringify(r, null, 2) + '\n');
} else {
  const row = (what: string, l: typeof r.flood) =>
    `${what.padEnd(10)} ${String(l.count).padStart(6)}  ${l.p50Ms.toFixed(2).padStart(8)}  ${l.p99Ms.toFixed(2).padStart(8)}  ${l.maxMs.toFixed(1).padStart(8)}`;
  process.stdout.write(
    `daemon API latency (GET stats / list / metrics in turn, Unix socket), ${cpus().length} cores\n` +
      `           requests   p50 ms    p99 ms    max ms\n${row('baseline', r.baseline)}\n${row('flood', r.flood)}\n` +
      `flood: ${(r.floodMs / 1000).toFixed(1)} s; console log ${(r.consoleLogWrittenBytes / 1048576).toFixed(1)} MiB written, ` +
      `${(r.consoleLogDroppedBytes / 1048576).toFixed(1)} MiB dropped; ${r.framesToGuest} of ${r.framesSent} frames reached the NIC backend\n`,
  );
}
