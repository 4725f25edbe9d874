// VmHandle and the console, driven by a fake worker that speaks the worker protocol.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { attachConsole, EscapeFilter, type ConsoleAction } from '../src/cli/console.js';
import { VmHandle, defaultWasmPath } from '../src/vm/vm-handle.js';

const fakeWorker = new URL('./fixtures/fake-vm-worker.js', import.meta.url);

function fakeVm(mode: string, stopTimeoutMs = 2000): VmHandle {
  return new VmHandle(
    { kernel: mode, append: '', memMiB: 64, deterministic: true, wasmPath: defaultWasmPath() },
    { workerUrl: fakeWorker, stopTimeoutMs },
  );
}

function stdio() {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (b: Buffer) => out.push(b));
  stderr.on('data', (b: Buffer) => err.push(b));
  return {
    io: { stdin, stdout, stderr },
    out: () => Buffer.concat(out).toString('latin1'),
    err: () => Buffer.concat(err).toString('latin1'),
  };
}

const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));
const show = (actions: ConsoleAction[]) =>
  actions.map((a) => (a.kind === 'send' ? `send:${Buffer.from(a.data).toString('latin1')}` : a.kind));

async function waitFor(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('EscapeFilter', () => {
  test('plain input passes through', () => {
    assert.deepEqual(show(new EscapeFilter().feed(bytes('ls -l\r'))), ['send:ls -l\r']);
  });

  test('C-a x quits and drops what follows', () => {
    assert.deepEqual(show(new EscapeFilter().feed(bytes('ab\x01xcd'))), ['send:ab', 'quit']);
    assert.deepEqual(show(new EscapeFilter().feed(bytes('\x01X'))), ['quit']);
  });

  test('C-a C-a sends one C-a; C-a h asks for help; other keys after C-a are dropped', () => {
    assert.deepEqual(show(new EscapeFilter().feed(bytes('a\x01\x01b'))), ['send:a', 'send:\x01', 'send:b']);
    assert.deepEqual(show(new EscapeFilter().feed(bytes('\x01hz'))), ['help', 'send:z']);
    assert.deepEqual(show(new EscapeFilter().feed(bytes('\x01qz'))), ['send:z']);
  });

  test('the escape survives a chunk boundary', () => {
    const f = new EscapeFilter();
    assert.deepEqual(show(f.feed(bytes('ab\x01'))), ['send:ab']);
    assert.deepEqual(show(f.feed(bytes('x'))), ['quit']);
    const g = new EscapeFilter();
    g.feed(bytes('\x01'));
    assert.deepEqual(show(g.feed(bytes('\x01'))), ['send:\x01']);
  });
});

describe('VmHandle', () => {
  test('wasm path points at build/cpu.wasm in the repo', () => {
    assert.match(defaultWasmPath(), /[\\/]build[\\/]cpu\.wasm$/);
    assert.doesNotMatch(defaultWasmPath(), /[\\/]dist[\\/]/);
  });

  test('output, input echo and guest exit status', async () => {
    const vm = fakeVm('echo');
    let out = '';
    vm.on('output', (d) => (out += Buffer.from(d).toString('latin1')));
    vm.start();
    await waitFor(() => out.includes('booted'), 'boot message');
    vm.sendInput(bytes('hello'));
    await waitFor(() => out.includes('hello'), 'echo');
    vm.sendInput(bytes('F'));
    assert.deepEqual(await vm.exited, { code: 3, reason: 'guest reported failure' });
  });

  test('input larger than the ring is delivered in order', async () => {
    const vm = fakeVm('slow');
    let out = '';
    vm.on('output', (d) => (out += Buffer.from(d).toString('latin1')));
    vm.start();
    let big = '';
    for (let i = 0; big.length < 20_000; i++) big += `line ${i}\n`;
    vm.sendInput(bytes(big));
    await waitFor(() => out.length >= 'booted\n'.length + big.length, 'all input echoed', 30_000);
    assert.equal(out, 'booted\n' + big);
    assert.deepEqual(await vm.stop(), { code: 0, reason: 'stopped' });
  });

  test('stop() asks the worker, which reports its exit', async () => {
    const vm = fakeVm('echo');
    vm.start();
    assert.deepEqual(await vm.stop(), { code: 0, reason: 'stopped' });
  });

  test('stop() terminates a worker that does not listen', async () => {
    const vm = fakeVm('ignore-stop', 200);
    vm.start();
    const t0 = Date.now();
    const r = await vm.stop();
    assert.equal(r.code, 0);
    assert.ok(Date.now() - t0 >= 150, 'waited for the stop timeout first');
  });

  test('a crashing worker ends the VM with code 1', async () => {
    const vm = fakeVm('crash');
    vm.start();
    const r = await vm.exited;
    assert.equal(r.code, 1);
    assert.match(r.reason, /fake worker crashed/);
  });

  test('a worker that exits without saying why ends the VM with code 1', async () => {
    const vm = fakeVm('exit-silently');
    vm.start();
    const r = await vm.exited;
    assert.equal(r.code, 1);
    assert.match(r.reason, /exited unexpectedly/);
  });

  test('an error message from the worker becomes the exit reason', async () => {
    const vm = fakeVm('error-then-exit');
    const warnings: string[] = [];
    vm.on('warning', (m) => warnings.push(m));
    vm.start();
    const r = await vm.exited;
    assert.equal(r.code, 1);
    assert.equal(r.reason, 'kernel load failed: fake');
    assert.deepEqual(warnings, ['kernel load failed: fake']);
  });
});

describe('attachConsole (pipes)', () => {
  test('guest output to stdout, stdin to guest, poweroff exits 0', async () => {
    const s = stdio();
    const vm = fakeVm('echo');
    const done = attachConsole(vm, s.io);
    vm.start();
    s.io.stdin.write('echo hi\n');
    await waitFor(() => s.out().includes('echo hi\n'), 'echo');
    s.io.stdin.write('P');
    assert.equal(await done, 0);
    assert.equal(s.out(), 'booted\necho hi\n');
  });

  test('EOF on stdin keeps the VM running', async () => {
    const s = stdio();
    const vm = fakeVm('echo');
    const done = attachConsole(vm, s.io);
    vm.start();
    s.io.stdin.end('abc');
    await waitFor(() => s.out().includes('abc'), 'echo');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(vm.running, true, 'still running after EOF');
    await vm.stop();
    assert.equal(await done, 0);
  });

  test('C-a x stops the VM with status 0; C-a C-a and C-a h', async () => {
    const s = stdio();
    const vm = fakeVm('echo');
    const done = attachConsole(vm, s.io);
    vm.start();
    s.io.stdin.write('a\x01\x01b');
    await waitFor(() => s.out().includes('a\x01b'), 'literal C-a');
    s.io.stdin.write('\x01h');
    await waitFor(() => s.err().includes('C-a x'), 'help text');
    s.io.stdin.write('\x01x');
    assert.equal(await done, 0);
    assert.equal(s.out(), 'booted\na\x01b');
  });

  test('the guest failure code becomes the exit status', async () => {
    const s = stdio();
    const vm = fakeVm('echo');
    const done = attachConsole(vm, s.io);
    vm.start();
    s.io.stdin.write('F');
    assert.equal(await done, 3);
    assert.match(s.err(), /tsvisor: VM exited with status 3: guest reported failure/);
  });
});
