// The daemon under one noisy guest: a real `tsvisor serve` process, a VM
// whose guest prints to its console forever and whose switch NIC receives a
// flood of broadcast frames, and a quiet VM. Sequential API requests about
// the quiet VM measure what the flood costs everyone else. Used by
// test/daemon-loop.test.ts (with a bound) and bench/daemon-latency.ts.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { setTimeout as delay } from 'node:timers/promises';

const CLI = fileURLToPath(new URL('../../../bin/tsvisor.js', import.meta.url));
const SWITCH = 'floodnet';

/** `wfi; j -4` and the console spewer, as Linux Image files (see test/spew-kernel.ts). */
function image(code: number[], at: number): Uint8Array {
  const img = new Uint8Array(at + code.length * 4);
  const dv = new DataView(img.buffer);
  if (at > 0) dv.setUint32(0, 0x6f | (at << 20), true); // j at (at < 2048)
  code.forEach((insn, i) => dv.setUint32(at + i * 4, insn >>> 0, true));
  img.set([0x52, 0x53, 0x43, 0x05], 0x38); // "RSC\x05"
  return img;
}
const IDLE = image([0x10500073, 0xffdff06f], 0x40);
/** `lui t0,0x10000; li t1,65; sb t1,0(t0); j -4`: 'A' to the UART forever. */
const SPEW = image([0x100002b7, 0x04100313, 0x00628023, 0xffdff06f], 0x40);

export interface Latency {
  count: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface FloodReport {
  baseline: Latency;
  flood: Latency;
  /** Every stats response during the flood had devices.{nics,disks,balloon} and consoleLog. */
  sameShape: boolean;
  consoleLogWrittenBytes: number;
  consoleLogDroppedBytes: number;
  /** Frames the loud VM's NIC backend delivered toward its guest during the flood. */
  framesToGuest: number;
  framesSent: number;
  floodMs: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function summarize(ms: number[]): Latency {
  const s = [...ms].sort((a, b) => a - b);
  return { count: s.length, p50Ms: percentile(s, 50), p99Ms: percentile(s, 99), maxMs: s[s.length - 1] };
}

function call(sock: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: sock, method, path, headers: data ? { 'content-type': 'application/json' } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json: unknown = null;
        try {
          json = JSON.parse(text);
        } catch {
          // not JSON (metrics)
        }
        resolve({ status: res.statusCode ?? 0, json });
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await delay(50);
  }
}

/** Sequential requests for `ms`: the quiet VM's stats, the VM list and the metrics, in turn. */
async function measure(sock: string, ms: number, onStats?: (json: any) => void): Promise<number[]> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const paths = ['/v1/vms/quiet/stats', '/v1/vms', '/metrics'];
  const out: number[] = [];
  const end = performance.now() + ms;
  for (let i = 0; performance.now() < end; i++) {
    const path = paths[i % paths.length];
    const t = performance.now();
    const r = await call(sock, 'GET', path);
    out.push(performance.now() - t);
    if (r.status !== 200) throw new Error(`GET ${path}: HTTP ${r.status}`);
    if (path.endsWith('/stats')) onStats?.(r.json);
  }
  return out;
}

export async function runDaemonFlood(opts: { floodMs: number; baselineMs: number; log?: (m: string) => void }): Promise<FloodReport> {
  const log = opts.log ?? (() => {});
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-flood-'));
  const images = join(dir, 'images');
  mkdirSync(images);
  writeFileSync(join(images, 'idle'), IDLE);
  writeFileSync(join(images, 'spew'), SPEW);
  const runtime = join(dir, 'run');
  const sock = join(dir, 'd.sock');
  let daemon: ChildProcess | null = null;
  let flooder: Worker | null = null;
  let err = '';
  try {
    daemon = spawn(process.execPath, [CLI, 'serve', '--socket', sock, '--state-dir', join(dir, 'state'), '--images-dir', images, '--memory-budget', '256M', '--cpus', '1'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, TSVISOR_RUNTIME_DIR: runtime },
    });
    daemon.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    await waitFor('the daemon to listen', () => /listening on/.test(err) || daemon!.exitCode !== null, 30_000);
    if (!/listening on/.test(err)) throw new Error(`the daemon did not start: ${err.trim()}`);
    for (const body of [
      { name: 'quiet', memory: 16, kernel: 'idle' },
      { name: 'loud', memory: 16, kernel: 'spew', nics: [{ mode: 'switch', switch: SWITCH }] },
    ]) {
      const r = await call(sock, 'POST', '/v1/vms', body);
      if (r.status !== 201) throw new Error(`create ${body.name}: HTTP ${r.status} ${JSON.stringify(r.json)}`);
    }
    const started = await call(sock, 'POST', '/v1/vms/quiet/start');
    if (started.status !== 200) throw new Error(`start quiet: HTTP ${started.status}`);
    await delay(500);
    log('baseline: quiet VM only');
    const baseline = summarize(await measure(sock, opts.baselineMs));

    const loud = await call(sock, 'POST', '/v1/vms/loud/start');
    if (loud.status !== 200) throw new Error(`start loud: HTTP ${loud.status} ${JSON.stringify(loud.json)}`);
    const switchSock = join(runtime, `switch-${SWITCH}.sock`);
    await waitFor('the switch socket', () => existsSync(switchSock), 30_000);
    await delay(300);
    const state = (await call(sock, 'GET', '/v1/vms/loud')).json;
    if (state?.state !== 'running') throw new Error(`the loud VM is ${state?.state}: ${state?.lastFailure}`);
    flooder = new Worker(new URL('./switch-flooder.js', import.meta.url), { workerData: { socketPath: switchSock, frameBytes: 1514 } });
    let flooderError: string | null = null;
    const flooderDone = new Promise<number>((resolve) => {
      flooder!.on('message', (m: { type: string; sent?: number; message?: string }) => {
        if (m.type === 'done') resolve(m.sent ?? 0);
        if (m.type === 'error') {
          flooderError = m.message ?? 'error';
          resolve(0);
        }
      });
    });
    log('flood: loud VM spewing console output and receiving broadcast frames');
    let sameShape = true;
    const t0 = performance.now();
    const flood = summarize(
      await measure(sock, opts.floodMs, (s) => {
        const d = s?.devices;
        sameShape &&= Array.isArray(d?.nics) && Array.isArray(d?.disks) && 'balloon' in (d ?? {}) && typeof s?.consoleLog?.droppedBytes === 'number';
      }),
    );
    const floodMs = performance.now() - t0;
    const ls = (await call(sock, 'GET', '/v1/vms/loud/stats')).json;
    flooder.postMessage('stop');
    const framesSent = await flooderDone;
    if (flooderError) throw new Error(`the switch flooder failed: ${flooderError}`);
    const nic = ls.devices.nics[0];
    return {
      baseline,
      flood,
      sameShape,
      consoleLogWrittenBytes: ls.consoleLog?.writtenBytes ?? -1, // -1: a daemon without these counters
      consoleLogDroppedBytes: ls.consoleLog?.droppedBytes ?? -1,
      framesToGuest: nic ? nic.host.txToGuestFrames : 0,
      framesSent,
      floodMs,
    };
  } catch (e) {
    // The daemon's own account helps more than the symptom seen from outside.
    throw new Error(`${e instanceof Error ? e.message : String(e)}\ndaemon stderr:\n${err.trim()}`);
  } finally {
    await flooder?.terminate();
    if (daemon && daemon.exitCode === null) {
      daemon.kill('SIGTERM');
      await new Promise((r) => daemon!.once('exit', r));
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
