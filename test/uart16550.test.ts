import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Uart16550,
  UART_DLL,
  UART_DLM,
  UART_FCR,
  UART_IER,
  UART_IIR,
  UART_LCR,
  UART_LSR,
  UART_MCR,
  UART_MSR,
  UART_RBR,
  UART_SCR,
  UART_THR,
  UART_FIFO_SIZE,
} from '../src/devices/uart16550.js';

function setup() {
  const out: number[] = [];
  const irq: boolean[] = [];
  const uart = new Uart16550({ onOutput: (b) => out.push(b), irq: (l) => irq.push(l) });
  const rd = (off: number) => uart.read(off, 1);
  const wr = (off: number, v: number) => uart.write(off, 1, v);
  return { uart, out, irq, rd, wr, level: () => uart.irqAsserted };
}

test('transmit writes go to onOutput at once and THR always reads empty', () => {
  const { out, rd, wr } = setup();
  for (const c of 'hi\n') wr(UART_THR, c.charCodeAt(0));
  assert.deepEqual(out, [0x68, 0x69, 0x0a]);
  assert.equal(rd(UART_LSR) & 0x60, 0x60, 'THRE and TEMT set');
  assert.equal(rd(UART_LSR) & 0x01, 0, 'DR clear with no input');
});

test('divisor latch is reached through DLAB and does not disturb IER or transmit', () => {
  const { out, rd, wr } = setup();
  wr(UART_IER, 0x05);
  wr(UART_LCR, 0x83);
  wr(UART_DLL, 0x01);
  wr(UART_DLM, 0x02);
  assert.equal(rd(UART_DLL), 0x01);
  assert.equal(rd(UART_DLM), 0x02);
  wr(UART_LCR, 0x03);
  assert.equal(rd(UART_IER), 0x05);
  assert.equal(rd(UART_LCR), 0x03);
  assert.deepEqual(out, [], 'a DLL write is not a transmit');
  wr(UART_SCR, 0xa5);
  assert.equal(rd(UART_SCR), 0xa5);
});

test('IIR shows 0xC0 only when FIFOs are enabled', () => {
  const { rd, wr } = setup();
  assert.equal(rd(UART_IIR), 0x01);
  wr(UART_FCR, 0x01);
  assert.equal(rd(UART_IIR), 0xc1);
  wr(UART_FCR, 0x00);
  assert.equal(rd(UART_IIR), 0x01);
});

test('receive: data ready, FIFO order, room, and receive interrupt', () => {
  const { uart, rd, wr, level } = setup();
  wr(UART_FCR, 0x01); // FIFO on, trigger level 1
  assert.equal(uart.rxRoom(), UART_FIFO_SIZE);
  const bytes = Array.from({ length: 20 }, (_, i) => 0x40 + i);
  assert.equal(uart.pushInput(bytes), UART_FIFO_SIZE, 'accepts only what fits');
  assert.equal(uart.rxRoom(), 0);
  assert.equal(level(), false, 'no interrupt while IER is 0');
  assert.equal(rd(UART_LSR) & 1, 1);
  wr(UART_IER, 0x01);
  assert.equal(level(), true);
  assert.equal(rd(UART_IIR) & 0x0f, 0x04, 'received data available');
  for (let i = 0; i < UART_FIFO_SIZE; i++) assert.equal(rd(UART_RBR), 0x40 + i);
  assert.equal(rd(UART_LSR) & 1, 0);
  assert.equal(level(), false, 'line drops once the FIFO is drained');
  assert.equal(rd(UART_IIR) & 0x0f, 0x01);
});

test('without FIFOs the receiver holds one byte', () => {
  const { uart, rd } = setup();
  assert.equal(uart.pushInput([1, 2, 3]), 1);
  assert.equal(rd(UART_RBR), 1);
  assert.equal(uart.pushInput([2, 3]), 1);
});

test('FIFO mode below the trigger level reports character timeout', () => {
  const { uart, rd, wr, level } = setup();
  wr(UART_FCR, 0x81); // trigger level 8
  wr(UART_IER, 0x01);
  uart.pushInput([1, 2, 3]);
  assert.equal(level(), true);
  assert.equal(rd(UART_IIR), 0xcc);
  uart.pushInput([4, 5, 6, 7, 8]);
  assert.equal(rd(UART_IIR), 0xc4);
});

test('FCR clear-receive empties the FIFO', () => {
  const { uart, rd, wr } = setup();
  wr(UART_FCR, 0x01);
  uart.pushInput([1, 2]);
  wr(UART_FCR, 0x03);
  assert.equal(rd(UART_LSR) & 1, 0);
});

test('THRE interrupt: raised on enable, acknowledged by IIR read, re-armed by THR write', () => {
  const { rd, wr, level, out } = setup();
  wr(UART_IER, 0x02);
  assert.equal(level(), true, 'enabling THRI with THR empty raises it');
  assert.equal(rd(UART_IIR) & 0x0f, 0x02);
  assert.equal(level(), false, 'reading IIR that reports THRE acknowledges it');
  assert.equal(rd(UART_IIR) & 0x0f, 0x01);
  wr(UART_THR, 0x41);
  assert.deepEqual(out, [0x41]);
  assert.equal(level(), true, 'THR write re-arms it');
  // Linux's startup THRE test: toggle IER.THRI off and on, expect THRE again.
  rd(UART_IIR);
  assert.equal(level(), false);
  wr(UART_IER, 0x00);
  wr(UART_IER, 0x02);
  assert.equal(rd(UART_IIR) & 0x0f, 0x02);
  // Disabling THRI drops the line even with the source pending.
  wr(UART_THR, 0x42);
  assert.equal(level(), true);
  wr(UART_IER, 0x00);
  assert.equal(level(), false);
});

test('received data outranks THRE and reading IIR then leaves THRE pending', () => {
  const { uart, rd, wr, level } = setup();
  wr(UART_IER, 0x03);
  uart.pushInput([0x61]);
  assert.equal(rd(UART_IIR) & 0x0f, 0x04);
  assert.equal(level(), true);
  assert.equal(rd(UART_RBR), 0x61);
  assert.equal(rd(UART_IIR) & 0x0f, 0x02, 'THRE was not acknowledged by the earlier IIR read');
  assert.equal(level(), false);
});

test('8250-style interrupt-driven transmit drains a buffer without stalling', () => {
  // Mimics serial8250's handler: on each interrupt read IIR, then LSR, then send up to
  // 16 bytes while THRE, and clear IER.THRI when the buffer is empty.
  const { rd, wr, level, out } = setup();
  wr(UART_FCR, 0x07);
  const msg = Array.from({ length: 100 }, (_, i) => i & 0xff);
  let pos = 0;
  wr(UART_IER, 0x01 | 0x02); // start_tx
  let rounds = 0;
  while (level() && rounds++ < 100) {
    const iir = rd(UART_IIR);
    if (iir & 1) break;
    const lsr = rd(UART_LSR);
    if (lsr & 0x20) {
      for (let n = 0; n < 16 && pos < msg.length; n++) wr(UART_THR, msg[pos++]!);
      if (pos === msg.length) wr(UART_IER, 0x01); // stop_tx
    }
  }
  assert.deepEqual(out, msg);
  assert.equal(level(), false);
});

test('loopback returns transmitted bytes and mirrors modem lines', () => {
  const { rd, wr, out } = setup();
  wr(UART_FCR, 0x01);
  wr(UART_MCR, 0x10 | 0x0b);
  wr(UART_THR, 0x5a);
  assert.deepEqual(out, []);
  assert.equal(rd(UART_RBR), 0x5a);
  assert.equal(rd(UART_MSR) & 0xf0, 0x10 | 0x20 | 0x80);
  wr(UART_MCR, 0x0b);
  assert.equal(rd(UART_MSR) & 0xf0, 0xb0);
});

test('IRQ line is driven on level changes only', () => {
  const { uart, irq, rd, wr } = setup();
  wr(UART_IER, 0x01);
  uart.pushInput([1]);
  uart.pushInput([]);
  rd(UART_RBR);
  assert.deepEqual(irq, [true, false]);
});

test('save/restore round-trips and rejects malformed state without changes', () => {
  const a = setup();
  a.wr(UART_FCR, 0x41);
  a.wr(UART_LCR, 0x03);
  a.wr(UART_IER, 0x03);
  a.wr(UART_SCR, 7);
  a.uart.pushInput([9, 8, 7]);
  const saved = JSON.parse(JSON.stringify(a.uart.save()));
  const b = setup();
  assert.deepEqual(b.uart.restore(saved), { ok: true });
  assert.deepEqual(b.uart.save(), a.uart.save());
  assert.equal(b.level(), true);
  assert.deepEqual(b.irq, [true]);
  assert.equal(b.rd(UART_RBR), 9);
  assert.equal(b.rd(UART_SCR), 7);

  const c = setup();
  const before = c.uart.save();
  for (const bad of [null, 5, {}, { ...saved, ier: 300 }, { ...saved, rx: new Array(17).fill(0) }, { ...saved, thrPending: 1 }]) {
    const r = c.uart.restore(bad);
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.error, /uart16550/);
  }
  assert.deepEqual(c.uart.save(), before);
});
