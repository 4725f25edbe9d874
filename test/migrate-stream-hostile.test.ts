// Hostile state streams: snapshots and migration streams are untrusted input on
// the receiving side (a damaged file, a broken transfer, a hostile sender). A
// property test mutates real ones (made by a real machine) in many ways and
// feeds them to the receiver: every input must end in the receiver's own clear
// error or a machine that runs; never another exception, never a write outside
// the VM's RAM.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { VirtMachine, type MachineConfig } from '../src/machine/virt.js';
import { readSnapshot, writeSnapshot, loadSnapshotMemory, SnapshotError, STATE_FILE, MEMORY_FILE } from '../src/vm/snapshot.js';
import { defaultWasmPath } from '../src/vm/vm-handle.js';
import { connect } from 'node:net';
import {
  FrameDecoder, FrameType, MIGRATION_MAGIC, MIGRATION_VERSION, PAGE_SIZE as MIG_PAGE, decodeJson, encodeFrame, encodeJson, encodePages, frameTypeName,
} from '../src/vm/migration/stream.js';
import { api, startTestDaemon, until, type TestDaemon } from './daemon-helpers.js';
import { budget } from './lib/budget.js';

const MEM_MIB = 16;
/** Inputs per property (more for a long local hunt: TSVISOR_HOSTILE_RUNS=2000). */
const RUNS = Number(process.env.TSVISOR_HOSTILE_RUNS ?? 80);
/** A counting loop in M-mode: a0 += 1 forever (addi a0,a0,1; j -4). */
const PROGRAM = Uint8Array.from([0x13, 0x05, 0x15, 0x00, 0x6f, 0xf0, 0xdf, 0xff]);
const wasmBytes = new Uint8Array(readFileSync(defaultWasmPath()));
const host = { consoleOut: () => {}, power: () => {}, randomBytes: (n: number) => new Uint8Array(n).fill(7) };
/** Devices with state worth attacking: console (hvc0), rng, balloon, a CPU that has run. */
const machineConfig = (): MachineConfig => ({ ramSize: MEM_MIB << 20, bios: PROGRAM, bootargs: '', deterministic: true, virtioConsole: true, rng: true, balloon: true });
const snapConfig = { kernel: 'no-kernel', append: '', memMiB: MEM_MIB, deterministic: true, virtioConsole: true, rng: true, balloon: true };

let dir: string;
let good: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'tsvisor-hostile-stream-'));
  const created = VirtMachine.create(wasmBytes, machineConfig(), host);
  assert.ok(created.ok, !created.ok ? created.error : '');
  const m = created.machine;
  m.runSlice(50_000);
  // Some guest data in RAM beyond the program, so memory.bin has pages to damage.
  m.core.ram.fill(0xa5, 1 << 20, (1 << 20) + 3 * 4096);
  good = join(dir, 'good');
  writeSnapshot(good, { instret: Number(m.core.instret), config: snapConfig, machine: m.saveState() }, m.core.ram);
});
after(() => rmSync(dir, { recursive: true, force: true }));

const TOKEN = 'hostile-stream-token-0123';
let daemon: TestDaemon | null = null;
after(async () => {
  await daemon?.cleanup();
});

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Every path to a value in a JSON tree (containers included), for picking what to damage. */
function paths(v: Json, at: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(at);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...at, i], out));
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) paths(x, [...at, k], out);
  return out;
}

/** Values a hostile sender would try: out of range, wrong type, huge, negative, not a number. */
const hostileValue: fc.Arbitrary<Json | undefined> = fc.oneof(
  fc.constantFrom<Json | undefined>(
    undefined, null, true, false, 0, -1, 1, 2 ** 31, 2 ** 32, 2 ** 53, -(2 ** 53), 1e308, 0.5, '', '0x', '0x0', '0x1',
    '0xffffffffffffffff', '0x10000000000000000', '0x-1', '-0x1', 'NaN', '0x80000000', '0x80ffffff', '0x81000000', [], {}, [[0, 1e9]],
  ),
  fc.integer({ min: -0x1_0000, max: 0x1_0000 }),
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map((b) => `0x${b.toString(16)}`),
  fc.array(fc.integer({ min: -1, max: 0x1_0000 }), { maxLength: 40 }),
  fc.string({ maxLength: 12 }),
);

/** One damage: set (or delete) the value at the path picked by `pick` (an index into the path list, modulo its length). */
const mutation = fc.record({ pick: fc.nat({ max: 1_000_000 }), value: hostileValue });

function applyMutation(root: { [k: string]: Json }, m: { pick: number; value: Json | undefined }): string {
  const all = paths(root).filter((p) => p.length > 0);
  const p = all[m.pick % all.length]!;
  let parent: any = root;
  for (const k of p.slice(0, -1)) parent = parent[k];
  const last = p[p.length - 1]!;
  if (m.value === undefined) {
    if (Array.isArray(parent)) parent.splice(last as number, 1);
    else delete parent[last];
  } else parent[last] = m.value;
  return p.join('.');
}

let variants = 0;
/** A copy of the good snapshot with its payload damaged and the checksum made valid again (as an attacker would). */
function damagedCopy(ms: { pick: number; value: Json | undefined }[]): { path: string; what: string[] } {
  const path = join(dir, `v${variants++}`);
  cpSync(good, path, { recursive: true });
  const file = JSON.parse(readFileSync(join(path, STATE_FILE), 'utf8'));
  const what = ms.map((m) => applyMutation(file.payload, m));
  file.sha256 = createHash('sha256').update(JSON.stringify(file.payload)).digest('hex');
  writeFileSync(join(path, STATE_FILE), JSON.stringify(file));
  return { path, what };
}

/** Restore a snapshot directory the way `tsvisor run --restore` does; a running machine runs a slice. */
function receiveSnapshot(path: string): { refused: string } | { ran: bigint } {
  let snap;
  try {
    snap = readSnapshot(path);
  } catch (e) {
    if (e instanceof SnapshotError) return { refused: e.message };
    throw e;
  }
  const r = VirtMachine.restore(wasmBytes, { ...machineConfig(), bios: undefined }, host, snap.machine, (core) => {
    try {
      loadSnapshotMemory(path, core.ram);
    } catch (e) {
      if (e instanceof SnapshotError) return { ok: false, error: e.message };
      throw e;
    }
    return { ok: true };
  });
  if (!r.ok) return { refused: r.error };
  r.machine.runSlice(20_000);
  return { ran: r.machine.core.instret };
}

const isClearError = (msg: string) => msg.length > 0 && msg.length < 400 && !msg.includes('\n') && !/undefined is not|cannot read prop|is not a function/i.test(msg);

test('snapshots with damaged fields (valid checksum) are refused with a clear error or restore to a machine that runs', { timeout: budget(30 * 60 * 1000) }, () => {
  // Each run builds a machine (about 0.1-0.3 s on a loaded host): a modest count, many fields per run.
  let refused = 0;
  fc.assert(
    fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (ms) => {
      const { path, what } = damagedCopy(ms);
      try {
        const r = receiveSnapshot(path);
        if ('refused' in r) {
          refused++;
          assert.ok(isClearError(r.refused), `unclear error for ${what.join(', ')}: ${r.refused}`);
        }
      } finally {
        rmSync(path, { recursive: true, force: true });
      }
    }),
    { numRuns: RUNS },
  );
  assert.ok(refused > 0, 'some damage must be refused (else the mutations never reach a check)');
});

test('snapshot files cut short or with flipped bytes are refused with a clear error or restore to a machine that runs', { timeout: budget(30 * 60 * 1000) }, () => {
  const stateBytes = readFileSync(join(good, STATE_FILE));
  const memBytes = (MEM_MIB << 20);
  fc.assert(
    fc.property(
      fc.oneof(
        // The file ends in "}\n": cutting only the newline leaves it whole.
        fc.record({ kind: fc.constant('cut-state' as const), at: fc.integer({ min: 0, max: stateBytes.length - 2 }) }),
        fc.record({ kind: fc.constant('flip-state' as const), at: fc.integer({ min: 0, max: stateBytes.length - 1 }), xor: fc.integer({ min: 1, max: 255 }) }),
        fc.record({ kind: fc.constant('cut-memory' as const), at: fc.integer({ min: 0, max: memBytes - 1 }) }),
        fc.record({ kind: fc.constant('grow-memory' as const), at: fc.integer({ min: memBytes + 1, max: memBytes + (1 << 20) }) }),
      ),
      (d) => {
        const path = join(dir, `f${variants++}`);
        cpSync(good, path, { recursive: true });
        try {
          if (d.kind === 'cut-state') truncateSync(join(path, STATE_FILE), d.at);
          else if (d.kind === 'flip-state') {
            const b = Buffer.from(stateBytes);
            b[d.at]! ^= d.xor;
            writeFileSync(join(path, STATE_FILE), b);
          } else truncateSync(join(path, MEMORY_FILE), d.at);
          const r = receiveSnapshot(path);
          // A cut or a wrong size is always caught; a flipped byte is caught unless it hit JSON whitespace-equivalent text.
          if (d.kind !== 'flip-state') assert.ok('refused' in r, `${d.kind} at ${d.at} was accepted`);
          if ('refused' in r) assert.ok(isClearError(r.refused), `unclear error for ${d.kind} at ${d.at}: ${r.refused}`);
        } finally {
          rmSync(path, { recursive: true, force: true });
        }
      },
    ),
    { numRuns: RUNS },
  );
});

// ---- Migration streams against a real destination daemon ----

/** Sends `stream` on the daemon's incoming-migration endpoint; returns the frames it answered with. */
function sendIncoming(d: TestDaemon, stream: Uint8Array, cut: boolean): Promise<{ type: string; body: Record<string, unknown> }[]> {
  return new Promise((resolve) => {
    const s = connect(d.tcp!.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => {});
    s.on('close', () => {
      const all = Buffer.concat(chunks);
      const at = all.indexOf('\r\n\r\n');
      const frames: { type: string; body: Record<string, unknown> }[] = [];
      if (at >= 0) {
        try {
          for (const f of new FrameDecoder().push(all.subarray(at + 4))) frames.push({ type: frameTypeName(f.type), body: f.type === FrameType.PAGES ? {} : decodeJson(f) });
        } catch {
          // the daemon cut the stream: what was whole is kept
        }
      }
      resolve(frames);
    });
    s.write(`POST /v1/migrations/incoming HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: tsvisor-migration\r\nauthorization: Bearer ${TOKEN}\r\n\r\n`);
    if (!cut) s.end(stream);
    else {
      // A cut link: the bytes so far, then the connection is gone (not an orderly end).
      s.write(stream);
      setTimeout(() => s.resetAndDestroy(), 300);
    }
  });
}

test('hostile migration streams (damaged device state, pages, cuts) end in a clear refusal with nothing left, or a VM that runs', { timeout: budget(30 * 60 * 1000) }, async () => {
  daemon = await startTestDaemon({ memoryBudgetMiB: 1024, listen: { host: '127.0.0.1', port: 0 }, token: TOKEN });
  const d = daemon;
  // A real machine state of this daemon's VM shape: a snapshot of a running VM.
  const definition = { name: 'h', memory: 16, kernel: 'idle' };
  assert.equal((await api(d, 'POST', '/v1/vms', { ...definition, name: 'orig' })).status, 201);
  assert.equal((await api(d, 'POST', '/v1/vms/orig/start')).status, 200);
  await until('the VM to run', async () => ((await api(d, 'GET', '/v1/vms/orig/stats')).json?.instructions ?? 0) > 0, 120_000);
  const snapped = await api(d, 'PUT', '/v1/vms/orig/snapshot', { dir: 'base' });
  assert.ok(snapped.status < 300, snapped.text);
  const machine = JSON.parse(readFileSync(join(d.dir, 'state', 'snapshots', 'base', STATE_FILE), 'utf8')).payload.machine as { [k: string]: Json };
  const memory = readFileSync(join(d.dir, 'state', 'snapshots', 'base', MEMORY_FILE));
  assert.equal((await api(d, 'DELETE', '/v1/vms/orig?force=true')).status, 204);
  const pageCount = (16 << 20) / MIG_PAGE;
  // The pages the kernel image occupies (first 64 pages), as the source would send them.
  const indexes = Array.from({ length: 64 }, (_, i) => i);
  const pages = encodeFrame(FrameType.PAGES, encodePages(indexes, memory.subarray(0, 64 * MIG_PAGE)));

  let n = 0;
  let refused = 0;
  let ran = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(mutation, { minLength: 0, maxLength: 3 }),
      fc.oneof({ weight: 2, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 0x7fffffff }) }),
      // Most streams arrive whole; some are cut at a random byte.
      fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.nat() }),
      async (ms, badPage, cutAt) => {
       try {
        const state = JSON.parse(JSON.stringify(machine));
        const what = ms.map((m) => applyMutation(state, m));
        const parts = [encodeJson(FrameType.HELLO, { magic: MIGRATION_MAGIC, version: MIGRATION_VERSION, id: `hostile-prop-${n++}`, name: 'h', memMiB: 16, definition, diskSizes: [] }), pages];
        if (badPage !== undefined) {
          const b = new Uint8Array(8);
          new DataView(b.buffer).setUint32(0, 1, true);
          new DataView(b.buffer).setUint32(4, badPage | 0x8000_0000, true); // a zero page, at any index
          parts.push(encodeFrame(FrameType.PAGES, b));
        }
        parts.push(encodeJson(FrameType.ROUND, { round: 0 }), encodeJson(FrameType.STATE, { machine: state, instret: 1 }), encodeJson(FrameType.COMMIT, {}));
        let stream = Buffer.concat(parts);
        if (cutAt !== undefined) stream = stream.subarray(0, cutAt % stream.length);
        const t0 = Date.now();
        const answer = await sendIncoming(d, stream, cutAt !== undefined);
        const last = answer.at(-1);
        const label = `${what.join(', ') || 'no damage'}${badPage !== undefined ? `, zero page ${badPage}` : ''}${cutAt !== undefined ? `, cut at ${stream.length}` : ''}`;
        // Wait for the destination to settle: the VM runs there, or nothing is left.
        await until(`the destination to settle (${label})`, () => d.host.incoming.size === 0, 120_000);
        const vms = (await api(d, 'GET', '/v1/vms')).json as { name: string; state: string }[];
        if (last?.type === 'RUNNING') {
          ran++;
          assert.deepEqual(vms.map((v) => [v.name, v.state]), [['h', 'running']], label);
          assert.equal((await api(d, 'DELETE', '/v1/vms/h?force=true')).status, 204);
        } else {
          refused++;
          assert.deepEqual(vms, [], `nothing left after ${label}: ${JSON.stringify(answer)}`);
          const err = last?.body.error;
          // A cut stream may end before the daemon can say anything; an answer it gives is one clear line.
          if (process.env.TSVISOR_HOSTILE_VERBOSE) process.stderr.write(`# ${label}: ${String(err)} (${Date.now() - t0} ms)\n`);
          if (err !== undefined) assert.ok(typeof err === 'string' && isClearError(err), `unclear error for ${label}: ${String(err)}`);
          else assert.ok(cutAt !== undefined, `no refusal reason for ${label}: ${JSON.stringify(answer)}`);
        }
        assert.equal((await api(d, 'GET', '/v1/vms')).status, 200, 'the daemon answers');
       } catch (e) {
        process.stderr.write(`# failed: ${e instanceof Error ? e.message : String(e)}\n`);
        throw e;
       }
      },
    ),
    { numRuns: Math.max(8, Math.floor(RUNS / 5)) },
  );
  assert.ok(refused > 0, 'some streams must be refused');
  process.stderr.write(`# hostile streams: ${ran} ran, ${refused} refused\n`);
});
