// The GDB stub's protocol side against a real machine (the bare debugger test
// program in a VirtMachine), without gdb: packet framing and checksums, the
// transport's acknowledgements, and hostile or malformed packets, which must
// get an error reply and leave the guest and the host untouched.

import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { Acknowledger, PacketReader, encodePacket, checksum, textToHex } from '../src/gdb/packet.js';
import { targetXml } from '../src/gdb/registers.js';
import { VirtMachine } from '../src/machine/virt.js';
import { createSharedControl } from '../src/vm/protocol.js';
import { GdbSession } from '../src/vm/gdb-session.js';
import { CPU_FIELDS } from '../src/machine/cpu-persist.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const STEPS = join(ROOT, 'build/guest/gdb/steps.elf');
const SMP = join(ROOT, 'build/guest/gdb/smp.elf');
const WASM = join(ROOT, 'build/cpu.wasm');

before(() => {
  const r = spawnSync('bash', [join(ROOT, 'test/guest/build.sh')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});

test('packets: framing, checksums, escapes and the interrupt byte', () => {
  const r = new PacketReader();
  const bytes = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
  const good = encodePacket('m80000000,4');
  // Split anywhere, with noise and an interrupt between packets.
  const evs = [...r.push(bytes('xx' + good.slice(0, 5))), ...r.push(bytes(good.slice(5) + '\x03+$g#00-'))];
  assert.deepEqual(evs, [{ kind: 'packet', data: 'm80000000,4' }, { kind: 'interrupt' }, { kind: 'ack' }, { kind: 'bad', reason: 'checksum mismatch' }, { kind: 'nack' }]);
  // '#', '$', '}' and '*' in a reply are escaped, and the checksum covers the escaped text.
  const enc = encodePacket('a#b$c}d*e');
  assert.equal(enc, '$a}\x03b}\x04c}]d}\x0ae#' + checksum('a}\x03b}\x04c}]d}\x0ae').toString(16).padStart(2, '0'));
  // An endless packet is dropped with an error, and the stream recovers.
  const long = r.push(bytes('$' + 'A'.repeat(100_000) + '#00' + encodePacket('?')));
  assert.equal(long[0].kind, 'bad');
  assert.deepEqual(long[1], { kind: 'packet', data: '?' });
});

test('the transport acknowledges each packet until QStartNoAckMode', () => {
  const a = new Acknowledger();
  const bytes = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
  assert.equal(a.input(bytes(encodePacket('qSupported') + '$x#00')), '+-');
  assert.equal(a.input(bytes(encodePacket('QStartNoAckMode'))), '+');
  assert.equal(a.input(bytes(encodePacket('g'))), '');
});

test('the target description names the RISC-V features GDB looks for', () => {
  const xml = targetXml();
  for (const f of ['org.gnu.gdb.riscv.cpu', 'org.gnu.gdb.riscv.fpu', 'org.gnu.gdb.riscv.csr', 'org.gnu.gdb.riscv.virtual']) assert.ok(xml.includes(f), f);
  assert.match(xml, /<reg name="pc" bitsize="64" regnum="32"/);
  assert.match(xml, /<reg name="mstatus" bitsize="64" regnum="833"/); // 65 + 0x300
});

/** A stub on a real machine; `talk` sends packets and returns the replies. */
function session(harts = 1) {
  const wasm = new Uint8Array(readFileSync(WASM));
  const kernel = new Uint8Array(readFileSync(harts > 1 ? SMP : STEPS));
  const created = VirtMachine.create(wasm, { ramSize: 64 << 20, kernel, bootargs: '', deterministic: true, jit: true, harts }, {
    consoleOut: () => {},
    power: () => {},
  });
  assert.ok(created.ok, created.ok ? '' : created.error);
  const m = created.machine;
  const ch = new MessageChannel();
  const s = new GdbSession(ch.port2, {
    machine: () => m,
    control: createSharedControl(),
    deterministic: true,
    jit: true,
    rebuild: () => {
      throw new Error('not used');
    },
    muteConsole: () => {},
    idle: () => {},
  }, { checkpointEvery: 0 });
  ch.port1.postMessage({ type: 'connect' });
  const port: MessagePort = ch.port1;
  /** Send packets (and raw bytes), then let the session answer; ends with a continue so service() returns. */
  const talk = (packets: string[], raw = ''): string[] => {
    const text = packets.map(encodePacket).join('') + raw + encodePacket('c');
    port.postMessage({ type: 'data', data: Uint8Array.from(text, (c) => c.charCodeAt(0)) });
    assert.equal(s.service(), 'run');
    let out = '';
    for (let got = receiveMessageOnPort(port); got; got = receiveMessageOnPort(port)) {
      out += Buffer.from((got.message as { data: Uint8Array }).data).toString('latin1');
    }
    const r = new PacketReader();
    return r.push(Uint8Array.from(out, (c) => c.charCodeAt(0))).flatMap((e) => (e.kind === 'packet' ? [e.data] : []));
  };
  /** Each packet as its own message (as GDB sends them, one reply awaited each), then let the session answer. */
  const talkEach = (packets: string[]): string[] => {
    for (const p of packets) port.postMessage({ type: 'data', data: Uint8Array.from(encodePacket(p), (c) => c.charCodeAt(0)) });
    assert.equal(s.service(), 'run');
    return replies();
  };
  const replies = (): string[] => {
    let out = '';
    for (let got = receiveMessageOnPort(port); got; got = receiveMessageOnPort(port)) {
      out += Buffer.from((got.message as { data: Uint8Array }).data).toString('latin1');
    }
    return new PacketReader().push(Uint8Array.from(out, (c) => c.charCodeAt(0))).flatMap((e) => (e.kind === 'packet' ? [e.data] : []));
  };
  return { m, s, talk, talkEach, replies };
}

test('hostile packets get error replies; the guest state is untouched and the stub keeps answering', () => {
  const { m, talk } = session();
  const pc = m.core.pc;
  const regs = Array.from({ length: 32 }, (_, i) => m.core.getX(i));
  const replies = talk([
    'm', 'mzz,4', 'm80000000,', 'm0,10', 'mffffffffffffffff,ffffffff', 'M80000000,4:zz', 'M80000000,8:00', 'X80000000,10:ab',
    'p', 'pzz', 'p9999', 'p-1', 'Pzz=00', 'P1000=00', 'P1=', 'Z0,80000001,2', 'Z9,0,0', 'Z2,80000000,0', 'Z2,80000000,100000',
    'z0,80000000,4', 'z2,80000000,8', 'G00', 'qXfer:features:read:other.xml:0,10', 'qRcmd,zz', 'bs', 'vCont;x', 'qRcmd,' + textToHex('nonsense'),
    '\x00\xff',
  ]);
  // Malformed or impossible requests end in errors (or empty replies for unknown packets), never a crash.
  assert.deepEqual(replies.slice(0, 27), [
    'E01', 'E01', 'E01', 'E14', 'E14', 'E01', 'E01', 'E01',
    'E01', 'E01', 'E01', 'E01', 'E01', 'E01', 'E01', 'E22', 'E01', 'E22', 'E22',
    'E22', 'E22', 'E01', 'E00', 'E01', 'E01', 'E01', textToHex('unknown monitor command: nonsense (try monitor help)\n'),
  ]);
  assert.equal(replies[27], '');
  assert.equal(m.core.pc, pc);
  assert.deepEqual(Array.from({ length: 32 }, (_, i) => m.core.getX(i)), regs);
  // Still answering: the first instruction of the program reads back (li ra,0 = 0x4081, compressed).
  const [word] = talk(['m80000000,2']);
  assert.equal(word, Buffer.from(readFileSync(STEPS)).subarray(0x1000, 0x1002).toString('hex'));
});

test('breakpoint slots and the four hardware triggers run out with an error, and are freed again', () => {
  const { m, talk } = session();
  const many = Array.from({ length: 70 }, (_, i) => `Z0,${(0x80000000 + 4 * i).toString(16)},4`);
  const r = talk(many);
  assert.equal(r.filter((x) => x === 'OK').length, 62, '62 free breakpoint slots (two watch the kernel panic)');
  assert.ok(r.slice(62).every((x) => x === 'E22'));
  // Hardware breakpoints and watchpoints share the core's four Sdtrig triggers.
  const w = talk(['Z1,80001000,4', 'Z2,80002000,8', 'Z3,80002008,4', 'Z4,80002010,2', 'Z2,80002020,8', 'Z1,80001004,2']);
  assert.deepEqual(w, ['OK', 'OK', 'OK', 'OK', 'E22', 'E22']);
  // The guest reads them as debugger-owned (dmode) mcontrol6 triggers: a load one is 8 bytes NAPOT.
  const t1 = m.core.trigger(1);
  assert.equal(t1.tdata1 >> 59n, 0xdn, 'type 6 with dmode');
  assert.equal(t1.tdata2, 0x80002003n);
  assert.match(talk(['qRcmd,' + textToHex('triggers')])[0], new RegExp(textToHex('trigger 3: debugger, awatch 0x80002010')));
  assert.deepEqual(talk(['z1,80001000,2', 'z2,80002000,4', 'Z3,80003000,8']), ['OK', 'E22', 'OK'], 'a watch is removed by its exact length');
  assert.deepEqual(talk(['z2,80002000,8', 'z3,80002008,4', 'z4,80002010,2', 'z3,80003000,8']), ['OK', 'OK', 'OK', 'OK']);
  for (let i = 0; i < 4; i++) assert.equal(m.core.trigger(i).tdata1 >> 60n, 15n, `trigger ${i} is free again`);
  // A range straddling an aligned boundary takes two triggers when they are free: 8 bytes at 0x...ffc.
  assert.deepEqual(talk(['Z2,80002ffc,8']), ['OK']);
  assert.deepEqual([m.core.trigger(0).tdata2, m.core.trigger(1).tdata2], [0x80002ffdn, 0x80003001n]);
});

/** A register value as P/G packets carry it (little-endian hex). */
const le = (v: bigint) => Buffer.from(BigInt.asUintN(64, v).toString(16).padStart(16, '0'), 'hex').reverse().toString('hex');

test('a stepi that lands on a watched store, then continue: the watchpoint fires before the store, as a hardware trigger does', () => {
  const sym = new Map(spawnSync('riscv64-linux-gnu-nm', [STEPS], { encoding: 'utf8' }).stdout.trim().split('\n').map((l) => l.split(' ')).map(([a, , n]) => [n, BigInt('0x' + a)]));
  const counter = sym.get('counter')!;
  const addi = sym.get('count_loop')! + 14n; // addi t2, t2, 1; then sd t2, 0(t0)
  const { m, s, talkEach, replies } = session();
  const ram = () => new DataView(m.core.ram.buffer, m.core.ram.byteOffset).getBigUint64(Number(counter - 0x80000000n), true);
  assert.deepEqual(talkEach([`P20=${le(addi)}`, `P5=${le(counter)}`, 'P7=' + le(41n), 'P6=' + le(1n), `Z2,${counter.toString(16)},8`, 's', 'c']),
    ['OK', 'OK', 'OK', 'OK', 'OK', 'T05thread:1;']);
  assert.equal(m.core.pc, addi + 2n, 'the step ran the addi and stopped on the store');
  // The worker's loop: run, and hand the stop to the session.
  const r = m.runSlice(1000);
  s.afterSlice(r);
  assert.deepEqual(replies(), [`T05watch:${counter.toString(16)};thread:1;`]);
  assert.equal(m.core.pc, addi + 2n, 'stopped before the store');
  assert.equal(ram(), 0n, 'the store has not happened');
  // GDB steps over it (watchpoints removed, as it does for nonsteppable ones), then goes on.
  assert.deepEqual(talkEach([`z2,${counter.toString(16)},8`, 's', 'c']), ['OK', 'T05thread:1;']);
  assert.equal(ram(), 42n);
});

test('Ctrl-C stops a running guest with SIGINT', () => {
  const { talk } = session();
  talk([]); // running
  const got = talk([], '\x03');
  assert.equal(got[0], 'T02thread:1;');
});

test('two harts: thread packets, a saved hart\'s registers, bad thread ids, and triggers on every hart', () => {
  const { m, talk } = session(2);
  const ex = m.core.exports;
  assert.equal(ex.hartCurrent(), 0);
  const x5 = m.core.getX(5);
  const [list, more, qc, alive1, alive2, info2] = talk(['qfThreadInfo', 'qsThreadInfo', 'qC', 'T1', 'T2', 'qThreadExtraInfo,2']);
  assert.deepEqual([list, more, qc, alive1, alive2], ['m1,2', 'l', 'QC1', 'OK', 'OK']);
  assert.equal(Buffer.from(info2, 'hex').toString(), 'hart 1, stopped by HSM');
  // Thread 2 is hart 1's saved context: writing its t0 leaves hart 0's alone.
  const r = talk(['Hg2', 'P5=efbeadde00000000', 'p5', 'qC', 'Hg1', 'p5']);
  assert.deepEqual(r.slice(0, 4), ['OK', 'OK', 'efbeadde00000000', 'QC2']);
  assert.equal(BigInt.asUintN(64, ex.hartRegGet(1, 5)), 0xdeadbeefn);
  assert.equal(m.core.getX(5), x5);
  assert.equal(ex.hartCurrent(), 0, 'the live hart is back after reading another');
  // No thread 3, malformed ids and selections.
  assert.deepEqual(talk(['Hg3', 'Hgzz', 'Hx1', 'T3', 'T0', 'qThreadExtraInfo,9', 'vCont;s:5']), ['E01', 'E01', 'E01', 'E01', 'E01', 'E01', 'E01']);
  // A watchpoint goes into the Sdtrig state of both harts.
  const tdata1 = CPU_FIELDS.indexOf('tdata1_0');
  assert.deepEqual(talk(['Z2,80001000,8']), ['OK']);
  for (const h of [0, 1]) assert.notEqual(BigInt.asUintN(64, ex.hartFieldGet(h, tdata1)) >> 60n, 15n, `hart ${h} holds the trigger`);
  assert.deepEqual(talk(['z2,80001000,8']), ['OK']);
  for (const h of [0, 1]) assert.equal(BigInt.asUintN(64, ex.hartFieldGet(h, tdata1)) >> 60n, 15n, `hart ${h}'s trigger is free again`);
});
