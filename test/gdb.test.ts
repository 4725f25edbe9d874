// The GDB stub driven by Debian's gdb-multiarch in batch mode. On a bare
// program of our own (test/guest/gdb/steps.S): twenty single steps give the
// register trace QEMU's own gdb stub gives on the same program, with the
// translator on and off; a write watchpoint stops at each store to the
// program's global; in deterministic mode reverse-stepi retraces the forward
// steps and reverse-continue returns to the previous watchpoint hit. On the
// default Debian guest: a breakpoint on the uname system call handler (its
// address from System.map) hits when the guest runs uname, and a kernel
// variable reads back as the kernel wrote it.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDefaultGuest, type DefaultGuest } from '../src/image/default-guest.js';
import { writeCpio } from '../src/image/cpio.js';
import { WebSocket } from 'ws';
import { api, startTestDaemon, type TestDaemon } from './daemon-helpers.js';
import { budget } from './lib/budget.js';
import { elfSymbols, gdb } from './lib/gdb-batch.js';
import { freePort } from './lib/free-port.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin/tsvisor.js');
const STEPS = join(ROOT, 'build/guest/gdb/steps.elf');
const WATCHME = join(ROOT, 'build/guest/linux/watchme.elf');
const HAVE_GDB = spawnSync('gdb-multiarch', ['--version']).status === 0;
const HAVE_QEMU = spawnSync('qemu-system-riscv64', ['--version']).status === 0;
const NO_GDB = HAVE_GDB ? false : 'gdb-multiarch is not installed (scripts/packages.txt)';

interface Target {
  port: number;
  proc: ChildProcess;
  output: () => string;
}

/** Start a process and wait until `ready` appears in its stderr (or stdout). */
async function startTarget(cmd: string, args: string[], port: number, ready: RegExp | null): Promise<Target> {
  const proc = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString('latin1')));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString('latin1')));
  if (ready) {
    await new Promise<void>((res, rej) => {
      const t = setInterval(() => {
        if (ready.test(out)) {
          clearInterval(t);
          res();
        } else if (proc.exitCode !== null) {
          clearInterval(t);
          rej(new Error(`${cmd} ended before it was ready: ${out}`));
        }
      }, 50);
    });
  }
  return { port, proc, output: () => out };
}

async function stopTarget(t: Target): Promise<void> {
  if (t.proc.exitCode !== null || t.proc.signalCode !== null) return;
  t.proc.kill('SIGKILL');
  await new Promise((res) => t.proc.once('exit', res));
}

async function tsvisor(extra: string[]): Promise<Target> {
  const port = await freePort();
  return startTarget('node', [CLI, 'run', '--kernel', STEPS, '--mem', '64M', '--system-map', 'none', '--gdb', `tcp:127.0.0.1:${port}`, '--gdb-wait', ...extra], port, /gdb stub listening/);
}

async function qemu(): Promise<Target> {
  const port = await freePort();
  const t = await startTarget('qemu-system-riscv64', ['-M', 'virt', '-m', '64M', '-nographic', '-bios', 'none', '-kernel', STEPS, '-gdb', `tcp:127.0.0.1:${port}`, '-S'], port, null);
  // QEMU listens before it starts; give it the moment gdb's connect needs by retrying in the script.
  return t;
}

const X_REGS = Array.from({ length: 31 }, (_, i) => `$x${i + 1}`);
/** One line per stop: "R pc x1 .. x31" in hex. */
const DUMP = `printf "R %lx ${X_REGS.map(() => '%lx').join(' ')}\\n", $pc, ${X_REGS.join(', ')}`;
const dumps = (out: string) => out.split('\n').filter((l) => l.startsWith('R ')).map((l) => l.trim());

function stepScript(from: bigint, n: number): string[] {
  return [`tbreak *0x${from.toString(16)}`, 'continue', DUMP, ...Array.from({ length: n }, () => ['stepi', DUMP]).flat(), 'kill'];
}

describe('gdb stub on a bare program', { skip: NO_GDB }, () => {
  let sym: Map<string, bigint>;
  before(() => {
    const r = spawnSync('bash', [join(ROOT, 'test/guest/build.sh')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    sym = elfSymbols(STEPS);
  });

  test('twenty single steps give the register trace QEMU gives, translator on and off', { timeout: budget(600_000), skip: HAVE_QEMU ? false : 'qemu-system-riscv64 is not installed' }, async () => {
    const script = stepScript(sym.get('step_here')!, 20);
    const q = await qemu();
    let expected: string[];
    try {
      expected = dumps(await gdb(q.port, script));
    } finally {
      await stopTarget(q);
    }
    assert.equal(expected.length, 21, 'QEMU gave a register dump per step');
    assert.equal(expected[0].split(' ')[1], sym.get('step_here')!.toString(16));
    // The trace leaves step_here's page (a call into `work`): stepping crosses translated code.
    assert.ok(expected.some((l) => l.split(' ')[1] === sym.get('work')!.toString(16)), 'the steps enter work()');
    for (const jit of ['on', 'off']) {
      const t = await tsvisor(['--jit', jit]);
      try {
        const got = dumps(await gdb(t.port, script));
        assert.deepEqual(got, expected, `translator ${jit}: the register trace differs from QEMU's`);
      } finally {
        await stopTarget(t);
      }
    }
  });

  test('a write watchpoint stops at each store to the global, before QEMU-style nonsteppable reporting', { timeout: budget(300_000) }, async () => {
    const counter = sym.get('counter')!;
    const t = await tsvisor(['--jit', 'on']);
    try {
      const out = await gdb(t.port, [
        `watch *(long*)0x${counter.toString(16)}`, 'continue', 'p/x $pc', 'p $t2', 'continue', 'p $t2', 'continue', 'p $t2', 'kill',
      ]);
      assert.match(out, /Hardware watchpoint 1/);
      const vals = [...out.matchAll(/^\$\d+ = (\d+)$/gm)].map((m) => Number(m[1]));
      assert.deepEqual(vals, [1, 2, 3], `three stops with counter 1, 2, 3:\n${out}`);
      // gdb steps over the store (RISC-V watchpoints are nonsteppable) and stops after it.
      const pc = /\$1 = (0x[0-9a-f]+)/.exec(out)?.[1];
      assert.equal(BigInt(pc!), sym.get('count_loop')! + 20n, 'stopped right after the sd');
      assert.match(out, /Old value = 0\s+New value = 1/);
    } finally {
      await stopTarget(t);
    }
  });

  for (const jit of ['on', 'off']) {
    test(`hardware breakpoints and read/access watchpoints run on the CPU's triggers (translator ${jit})`, { timeout: budget(300_000) }, async () => {
      const hex = (name: string, off = 0n) => '0x' + (sym.get(name)! + off).toString(16);
      const t = await tsvisor(['--jit', jit]);
      try {
        // `work` ran 3000 times before step_here, so with the translator on it is translated
        // code by then: the hardware breakpoint must still catch each of the four calls.
        // always-inserted: GDB leaves its points in while stopped (it removes them by default),
        // so `monitor triggers` shows them.
        const out = await gdb(t.port, [
          `tbreak *${hex('step_here')}`, 'continue', 'set breakpoint always-inserted on',
          `hbreak *${hex('work')}`, 'monitor triggers',
          ...Array.from({ length: 4 }, () => ['continue', 'printf "HB %lx %d\\n", $pc, $s1']).flat(),
          'delete',
          `awatch *(long*)${hex('counter')}`,
          ...Array.from({ length: 4 }, () => ['continue', 'printf "AW %lx\\n", $pc']).flat(),
          'delete',
          // 12 bytes: the trigger covers 16, and a load of bytes 12..15 must not stop.
          `rwatch *(char(*)[12])${hex('pair')}`, 'monitor triggers', 'continue', 'printf "RW %lx\\n", $pc',
          'delete', 'monitor triggers', 'kill',
        ]);
        const lines = (tag: string) => [...out.matchAll(new RegExp(`^${tag} (.*)$`, 'gm'))].map((m) => m[1]);
        assert.match(out, /Hardware assisted breakpoint 2 at/, out);
        assert.match(out, /trigger 0: debugger, hbreak/, 'the breakpoint holds a trigger');
        const work = sym.get('work')!.toString(16);
        assert.deepEqual(lines('HB'), [`${work} 4`, `${work} 3`, `${work} 2`, `${work} 1`], `every call of work stops:\n${out}`);
        // Access watchpoint on counter: the load stops (GDB shows the value), then the store (old and new),
        // each reported after GDB stepped over the access.
        const cl = sym.get('count_loop')!;
        assert.deepEqual(lines('AW'), [cl + 14n, cl + 20n, cl + 14n, cl + 20n].map((x) => x.toString(16)), out);
        assert.match(out, /Hardware access \(read\/write\) watchpoint 3: \*\(long\*\)0x[0-9a-f]+\s+Value = 0/, out);
        assert.match(out, /Hardware access \(read\/write\) watchpoint 3: \*\(long\*\)0x[0-9a-f]+\s+Old value = 0\s+New value = 1/, out);
        // The read watchpoint stops at near_hit's load (reported after it), not at near_miss's.
        assert.deepEqual(lines('RW'), [(sym.get('near_hit')! + 4n).toString(16)], out);
        assert.match(out, /Hardware read watchpoint 4: /, out);
        assert.match(out, new RegExp(`trigger 0: debugger, rwatch ${hex('pair')} \\(12 bytes\\), matches ${hex('pair')}\\.\\.${hex('pair', 15n)}`), out);
        assert.match(out.slice(out.lastIndexOf('trigger 0:')), /trigger 0: free/, 'delete frees the triggers');
      } finally {
        await stopTarget(t);
      }
    });
  }

  test('deterministic: reverse-stepi retraces ten forward steps; reverse-continue returns to the previous watchpoint hit', { timeout: budget(300_000) }, async () => {
    const counter = sym.get('counter')!;
    const t = await tsvisor(['--deterministic', '--jit', 'on']);
    try {
      const out = await gdb(t.port, [
        `tbreak *0x${sym.get('step_here')!.toString(16)}`, 'continue', DUMP,
        ...Array.from({ length: 10 }, () => ['stepi', DUMP]).flat(),
        'echo ==reverse\\n',
        ...Array.from({ length: 10 }, () => ['reverse-stepi', DUMP]).flat(),
        'echo ==watch\\n',
        `watch *(long*)0x${counter.toString(16)}`, 'continue', 'continue', 'continue', 'monitor instret', DUMP,
        'echo ==back\\n',
        'reverse-continue', 'monitor instret', DUMP, 'p *(long*)0x' + counter.toString(16),
        'kill',
      ]);
      const [fwdPart, rest] = out.split('==reverse');
      const [revPart, watchAll] = rest.split('==watch');
      const [watchPart, backPart] = watchAll.split('==back');
      const fwd = dumps(fwdPart);
      const rev = dumps(revPart);
      assert.equal(fwd.length, 11, out);
      assert.equal(rev.length, 10, out);
      // After k reverse steps the registers are those after 10 - k forward steps.
      for (let k = 1; k <= 10; k++) assert.equal(rev[k - 1], fwd[10 - k], `reverse step ${k}`);
      assert.match(watchPart, /New value = 3/);
      // Back over the store that wrote 3, gdb stops before it with counter = 2 (it also steps back over the store).
      assert.match(backPart, /Old value = 3\s+New value = 2/, out);
      assert.match(backPart, /^\$\d+ = 2$/m, out);
      const nowWatch = BigInt(/^(\d+)$/m.exec(watchPart)![1]);
      const nowBack = BigInt(/^(\d+)$/m.exec(backPart)![1]);
      assert.ok(nowBack < nowWatch, `went back in instruction count (${nowWatch} -> ${nowBack})`);
    } finally {
      await stopTarget(t);
    }
  });
});

describe('gdb stub on the Debian guest', { skip: NO_GDB }, () => {
  let guest: DefaultGuest;
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-gdb-'));
  let initrd: string;
  before(async () => {
    guest = await ensureDefaultGuest({ progress: false, log: () => {} });
    const r = spawnSync('bash', [join(ROOT, 'test/guest/build.sh')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    // The default initramfs plus a second archive with the watched program (the kernel unpacks both,
    // the second from a 4-byte boundary).
    const extra = writeCpio([
      { path: 'usr', type: 'dir', mode: 0o755 },
      { path: 'usr/bin', type: 'dir', mode: 0o755 },
      { path: 'usr/bin/watchme', type: 'file', mode: 0o755, data: readFileSync(WATCHME) },
    ]);
    const base = readFileSync(guest.initrd);
    initrd = join(dir, 'initrd');
    writeFileSync(initrd, Buffer.concat([base, Buffer.alloc((4 - (base.length % 4)) % 4), extra]));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Resolves when `re` appears in the VM's output after `mark`. */
  const waitOutput = (vm: Target, re: RegExp, mark: number) => new Promise<void>((res, rej) => {
    const timer = setInterval(() => {
      if (re.test(vm.output().slice(mark))) {
        clearInterval(timer);
        res();
      } else if (vm.proc.exitCode !== null) {
        clearInterval(timer);
        rej(new Error(`the VM ended: ${vm.output().slice(-2000)}`));
      }
    }, 100);
  });

  test('uname hits a breakpoint on its handler; a kernel variable reads back; hardware breakpoint, steps back and forth, read, write and access watchpoints in the kernel; a watchpoint on a program\'s global hits', { timeout: budget(15 * 60_000) }, async (t) => {
    if (!guest.systemMap) return t.skip('the default guest has no System.map');
    const map = new Map(readFileSync(guest.systemMap, 'latin1').split('\n').map((l) => l.split(' ')).map(([a, , n]) => [n, a]));
    const handler = map.get('__riscv_sys_newuname');
    const banner = map.get('linux_banner');
    const jiffies = map.get('jiffies');
    const uts = map.get('init_uts_ns');
    assert.ok(handler && banner && jiffies && uts, 'System.map names __riscv_sys_newuname, linux_banner, jiffies and init_uts_ns');
    const port = await freePort();
    // Deterministic with checkpoints (the default interval): reverse execution in the kernel.
    const vm = await startTarget('node', [CLI, 'run', '--kernel', guest.kernel, '--initrd', initrd, '--mem', '256M', '--deterministic',
      '--jit', 'on', '--gdb', `tcp:127.0.0.1:${port}`], port, /tsvisor guest ready/);
    try {
      // Wait for the shell's prompt (input typed earlier can be flushed when the shell sets up the
      // terminal), then queue the command: the guest reads it once gdb lets it run.
      await waitOutput(vm, /tsvisor guest ready[^]*# /, 0);
      const out = gdb(port, [`break *0x${handler}`, 'continue', 'p/x $pc', `x/s 0x${banner}`, 'p/d $priv', 'detach'], 10 * 60_000);
      await new Promise((r) => setTimeout(r, 3000));
      vm.proc.stdin!.write('uname -r\n');
      const text = await out.catch((e: Error) => {
        throw new Error(`${e.message}\nthe VM's console:\n${vm.output().slice(-3000)}`);
      });
      assert.match(text, new RegExp(`Breakpoint 1, 0x0*${handler}`), text);
      assert.match(text, new RegExp(`= 0x${handler}`), text);
      assert.match(text, /"Linux version 6\.\d+/, 'linux_banner reads as the kernel wrote it');
      assert.match(text, /^\$\d+ = 1$/m, 'stopped in S-mode');
      // After detach the guest runs on and finishes the command.
      let mark = vm.output().length;
      vm.proc.stdin!.write('echo after-$((6*7))\n');
      await waitOutput(vm, /after-42\r?\n[^]*# /, mark);
      assert.match(vm.output(), /6\.\d+\.\d+.*riscv64/, 'uname printed the release');

      // A second session on the kernel, all on the CPU's triggers: a hardware breakpoint on the
      // handler, three steps forward and back (the typed command is in the checkpoint taken when
      // it arrived, so the replay reproduces it), then a read watchpoint on init_uts_ns (the
      // handler copies it), a write and an access watchpoint on jiffies (the timer tick).
      mark = vm.output().length;
      const tag = (t: string) => `printf "${t} %d %lx\\n", $priv, $pc`;
      const out3 = gdb(port, [
        `hbreak *0x${handler}`, 'continue', DUMP,
        ...Array.from({ length: 3 }, () => ['stepi', DUMP]).flat(), 'echo ==reverse\\n',
        ...Array.from({ length: 3 }, () => ['reverse-stepi', DUMP]).flat(), 'echo ==end\\n', 'monitor history', 'delete',
        `rwatch *(char(*)[8])0x${uts}`, 'continue', tag('RW'), 'delete',
        `watch *(long*)0x${jiffies}`, 'continue', tag('WW'), 'delete',
        `awatch *(long*)0x${jiffies}`, 'continue', tag('AW'), 'delete',
        'detach',
      ], 10 * 60_000);
      await new Promise((r) => setTimeout(r, 3000));
      vm.proc.stdin!.write('uname -r\n');
      const text3 = await out3.catch((e: Error) => {
        throw new Error(`${e.message}\nthe VM's console:\n${vm.output().slice(-3000)}`);
      });
      assert.match(text3, new RegExp(`Hardware assisted breakpoint 1 at 0x0*${handler}[^]*Breakpoint 1, 0x0*${handler}`), text3);
      const [fwdPart, revAll] = text3.split('==reverse');
      const fwd = dumps(fwdPart);
      const rev = dumps(revAll.split('==end')[0]);
      assert.equal(fwd.length, 4, text3);
      assert.equal(fwd[0].split(' ')[1], handler.replace(/^0+/, ''), 'the first dump is at the handler');
      assert.equal(rev.length, 3, text3);
      for (let k = 1; k <= 3; k++) assert.equal(rev[k - 1], fwd[3 - k], `kernel reverse step ${k}`);
      assert.match(text3, /reverse execution reaches back to instruction \d+/, text3);
      assert.match(text3, /Hardware read watchpoint 2: \*\(char\(\*\)\[8\]\)0x[0-9a-f]+\s+Value = "Linux/, text3);
      assert.match(text3, /Hardware watchpoint 3: \*\(long\*\)0x[0-9a-f]+\s+Old value = \d+\s+New value = \d+/, text3);
      assert.match(text3, /Hardware access \(read\/write\) watchpoint 4: \*\(long\*\)0x[0-9a-f]+\s+(Value|Old value) = \d+/, text3);
      for (const t of ['RW', 'WW', 'AW']) {
        const m = new RegExp(`^${t} (\\d) ([0-9a-f]+)$`, 'm').exec(text3);
        assert.ok(m, `${t} stop printed:\n${text3}`);
        assert.equal(m[1], '1', `${t}: stopped in S-mode`);
        assert.ok(BigInt('0x' + m[2]) >= 0xffffffff80000000n, `${t}: pc in the kernel`);
      }
      const old = /Old value = (\d+)\s+New value = (\d+)/.exec(text3.slice(text3.indexOf('Hardware watchpoint 3')))!;
      assert.ok(BigInt(old[2]) > BigInt(old[1]), 'jiffies went forward');
      await waitOutput(vm, /6\.\d+\.\d+[^\n]*riscv64[^]*# /, mark);

      // A third debugger session: a write watchpoint on the user program's global (a user virtual address).
      const watched = elfSymbols(WATCHME).get('watched')!;
      const main = elfSymbols(WATCHME).get('test_main')!;
      mark = vm.output().length;
      const out2 = gdb(port, [`watch *(long*)0x${watched.toString(16)}`, 'continue', 'p/d $priv', 'p/x $pc', `p *(long*)0x${watched.toString(16)}`, 'delete', 'detach'], 10 * 60_000);
      await new Promise((r) => setTimeout(r, 3000));
      vm.proc.stdin!.write('watchme\n');
      const text2 = await out2.catch((e: Error) => {
        throw new Error(`${e.message}\nthe VM's console:\n${vm.output().slice(-3000)}`);
      });
      assert.match(text2, /Hardware watchpoint 1/, text2);
      assert.match(text2, /New value = 1/, text2);
      assert.match(text2, /^\$1 = 0$/m, 'stopped in U-mode');
      const pc = BigInt(/^\$2 = (0x[0-9a-f]+)$/m.exec(text2)![1]);
      assert.ok(pc >= main && pc < main + 0x100n, `stopped in watchme's test_main (pc 0x${pc.toString(16)})`);
      assert.match(text2, /^\$3 = 1$/m);
      await waitOutput(vm, /watchme: watched=3/, mark);
    } finally {
      await stopTarget(vm);
    }
  });
});

describe('gdb stub through the daemon', { skip: NO_GDB }, () => {
  let d: TestDaemon;
  before(async () => {
    d = await startTestDaemon();
  });
  after(async () => {
    await d?.cleanup();
  });

  /** The WebSocket upgrade's refusal status, or 101 when it was accepted. */
  const upgrade = (name: string) => new Promise<number>((resolve) => {
    const ws = new WebSocket(`ws+unix://${d.socketPath}:/v1/vms/${name}/gdb`);
    ws.once('open', () => {
      ws.close();
      resolve(101);
    });
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.once('error', () => resolve(0));
  });

  test('tsvisor gdb bridges a local port to a VM created with gdb; VMs without it refuse', { timeout: budget(300_000) }, async () => {
    for (const [name, gdbOn] of [['dbg', true], ['plain', false]] as const) {
      const r = await api(d, 'POST', '/v1/vms', { name, memory: 64, kernel: 'spin', gdb: gdbOn });
      assert.equal(r.status, 201, r.text);
      assert.equal((await api(d, 'POST', `/v1/vms/${name}/start`)).status, 200);
    }
    assert.equal(await upgrade('plain'), 409, 'no stub without "gdb": true');
    const proc = await freePort();
    const bridge = await startTarget('node', [CLI, 'gdb', 'dbg', '--listen', `127.0.0.1:${proc}`, '--socket', d.socketPath], proc, /gdb for VM 'dbg'/);
    try {
      const out = await gdb(proc, ['p $t0', 'stepi', 'stepi', 'p $t0', 'p/x $pc', 'detach']);
      const t0 = [...out.matchAll(/^\$\d+ = (\d+)$/gm)].map((m) => BigInt(m[1]));
      assert.equal(t0.length, 2, out);
      assert.equal(t0[1], t0[0] + 1n, 'two steps of the spin loop add one to t0');
      // Attached while the VM ran; detached, it runs on.
      assert.equal((await api(d, 'GET', '/v1/vms/dbg')).json.state, 'running');
      // The VM ran between sessions: a second attach sees t0 moved on.
      const out2 = await gdb(proc, ['p $t0', 'detach']);
      const again = BigInt(/^\$1 = (\d+)$/m.exec(out2)![1]);
      assert.ok(again > t0[1], `the guest ran after detach (${t0[1]} -> ${again})`);
    } finally {
      await stopTarget(bridge);
    }
  });
});
