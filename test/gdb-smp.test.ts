// The GDB stub on a two-hart VM (--smp 2), driven by gdb-multiarch in batch
// mode on test/guest/gdb/smp.S: the harts are GDB threads 1 and 2; `info
// threads` lists both (hart 1 "stopped by HSM" before hart 0 starts it);
// registers differ per thread; a breakpoint and a write watchpoint that only
// hart 1 can hit report thread 2; stepping thread 2 (translator on) moves its
// pc while thread 1's stays where it was. On the Debian guest with --smp 2:
// both harts are threads at the shell prompt, with their own stacks, and a
// breakpoint on the uname handler stops on the thread that runs it.

import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { budget } from './lib/budget.js';
import { readFileSync } from 'node:fs';
import { ensureDefaultGuest } from '../src/image/default-guest.js';
import { elfSymbols, gdb } from './lib/gdb-batch.js';
import { freePort } from './lib/free-port.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin/tsvisor.js');
const SMP = join(ROOT, 'build/guest/gdb/smp.elf');
const HAVE_GDB = spawnSync('gdb-multiarch', ['--version']).status === 0;

/** tsvisor with two harts, held for the debugger; resolves once its stub listens. */
async function start(port: number, jit: string, args?: string[]): Promise<{ proc: ChildProcess; output: () => string }> {
  const proc = spawn('node', [CLI, 'run', ...(args ?? ['--kernel', SMP, '--mem', '64M', '--system-map', 'none', '--gdb-wait']), '--smp', '2', '--jit', jit,
    '--gdb', `tcp:127.0.0.1:${port}`], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  await new Promise<void>((res, rej) => {
    const seen = (d: Buffer) => {
      out += d.toString('latin1');
      if (/gdb stub listening/.test(out)) res();
    };
    proc.stdout!.on('data', seen);
    proc.stderr!.on('data', seen);
    proc.once('exit', () => rej(new Error(`tsvisor ended before its stub listened: ${out}`)));
  });
  return { proc, output: () => out };
}

describe('gdb stub with two harts', { skip: HAVE_GDB ? false : 'gdb-multiarch is not installed (scripts/packages.txt)' }, () => {
  let sym: Map<string, bigint>;
  before(() => {
    const r = spawnSync('bash', [join(ROOT, 'test/guest/build.sh')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    sym = elfSymbols(SMP);
  });

  test('harts are threads: listing, per-thread registers, stops name the hart, stepping one thread (translator on)', { timeout: budget(300_000) }, async () => {
    const hex = (name: string) => '0x' + sym.get(name)!.toString(16);
    const port = await freePort();
    const t = await start(port, 'on');
    try {
      const out = await gdb(port, [
        'info threads',
        `break *${hex('hart1_work')}`, 'continue',
        'printf "STOP %d %lx\\n", $_thread, $pc',
        'info threads',
        'thread 1', 'printf "PC1 %lx %d\\n", $pc, $s0',
        'thread 2', 'printf "PC2 %lx %d\\n", $pc, $s1',
        'delete',
        ...Array.from({ length: 3 }, () => ['stepi', 'printf "STEP %d %lx %d\\n", $_thread, $pc, $s1']).flat(),
        'thread 1', 'printf "PC1 %lx %d\\n", $pc, $s0',
        'stepi', 'printf "STEP %d %lx %d\\n", $_thread, $pc, $s0',
        `watch *(long*)${hex('shared')}`, 'continue',
        'printf "WATCH %d %lx %d\\n", $_thread, $pc, $s1',
        'kill',
      ], budget(240_000));
      const lines = (tag: string) => [...out.matchAll(new RegExp(`^${tag} (.*)$`, 'gm'))].map((m) => m[1].split(' '));
      // Before anything ran: two threads, hart 1 not started yet.
      assert.match(out, /Thread 1 \(hart 0, running, live\)/, out);
      assert.match(out, /Thread 2 \(hart 1, stopped by HSM\)/, out);
      const work = sym.get('hart1_work')!.toString(16);
      assert.deepEqual(lines('STOP'), [['2', work]], `the breakpoint only hart 1 reaches reports thread 2:\n${out}`);
      assert.match(out, /Thread 2 \(hart 1, running, live\)/, 'hart 1 started and is live at its stop');
      const [pc1a, pc1b] = lines('PC1');
      const loop = sym.get('hart0_loop')!;
      const pc1 = BigInt('0x' + pc1a[0]);
      assert.ok(pc1 >= loop && pc1 < sym.get('hart1_entry')!, `thread 1 is in its loop: ${pc1a}`);
      assert.ok(Number(pc1a[1]) > 0, 'hart 0 counted before hart 1 hit the breakpoint');
      assert.deepEqual(lines('PC2')[0][0], work, 'thread 2 reads hart 1 registers');
      const s1 = Number(lines('PC2')[0][1]);
      // hart1_work: addi s1; sd; ret; then the caller's `j 1b` ... each step is thread 2's.
      const steps = lines('STEP');
      assert.equal(steps.length, 4, out);
      assert.deepEqual(steps.slice(0, 3).map((s) => s[0]), ['2', '2', '2']);
      assert.equal(BigInt('0x' + steps[0][1]), sym.get('hart1_work')! + 2n, 'the first step ran addi (compressed)');
      assert.equal(Number(steps[0][2]), s1 + 1);
      // Thread 1 did not move while thread 2 stepped.
      assert.deepEqual(pc1b, pc1a, 'hart 0 stayed stopped while hart 1 stepped');
      // Stepping thread 1 runs hart 0's loop.
      assert.equal(steps[3][0], '1');
      assert.notEqual(steps[3][1], pc1a[0], 'thread 1 stepped');
      // The watchpoint on `shared` (a trigger on every hart) is hit by hart 1.
      const w = lines('WATCH');
      assert.equal(w.length, 1, out);
      assert.equal(w[0][0], '2', `the store to shared is hart 1's:\n${out}`);
      assert.match(out, /Hardware watchpoint 2/);
    } finally {
      if (t.proc.exitCode === null) t.proc.kill('SIGKILL');
    }
  });
});

describe('gdb stub on the Debian guest with two harts', { skip: HAVE_GDB ? false : 'gdb-multiarch is not installed (scripts/packages.txt)' }, () => {
  test('both harts are threads at the prompt; a breakpoint on the uname handler stops on the thread that runs it', { timeout: budget(15 * 60_000) }, async (t) => {
    const guest = await ensureDefaultGuest({ progress: false, log: () => {} });
    if (!guest.systemMap) return t.skip('the default guest has no System.map');
    const map = new Map(readFileSync(guest.systemMap, 'latin1').split('\n').map((l) => l.split(' ')).map(([a, , n]) => [n, a]));
    const handler = map.get('__riscv_sys_newuname');
    assert.ok(handler, 'System.map names __riscv_sys_newuname');
    const port = await freePort();
    const vm = await start(port, 'on', ['--kernel', guest.kernel, '--initrd', guest.initrd, '--mem', '256M']);
    try {
      await new Promise<void>((res, rej) => {
        const timer = setInterval(() => {
          if (/tsvisor guest ready[^]*# /.test(vm.output())) {
            clearInterval(timer);
            res();
          } else if (vm.proc.exitCode !== null) {
            clearInterval(timer);
            rej(new Error(`the VM ended: ${vm.output().slice(-2000)}`));
          }
        }, 100);
      });
      const out = gdb(port, [
        'info threads', 'thread 1', 'printf "PC1 %lx %lx\\n", $pc, $sp', 'thread 2', 'printf "PC2 %lx %lx\\n", $pc, $sp',
        `break *0x${handler}`, 'continue', 'printf "HIT %d %lx %d\\n", $_thread, $pc, $priv', 'info threads', 'detach',
      ], budget(10 * 60_000));
      // gdb stops the guest when it attaches; the command is read once gdb continues.
      await new Promise((r) => setTimeout(r, 3000));
      vm.proc.stdin!.write('uname -r\n');
      const text = await out;
      assert.match(text, /Thread 1 \(hart 0, [a-z (A-Z)]+\)/, text);
      assert.match(text, /Thread 2 \(hart 1, (running|waiting \(WFI\))/, `the kernel started hart 1:\n${text}`);
      // Both harts may idle at the same wfi, but each runs on its own kernel stack.
      const sp1 = /^PC1 [0-9a-f]+ ([0-9a-f]+)$/m.exec(text)?.[1];
      const sp2 = /^PC2 [0-9a-f]+ ([0-9a-f]+)$/m.exec(text)?.[1];
      assert.ok(sp1 && sp2 && sp1 !== sp2, `each thread shows its own hart's registers:\n${text}`);
      const hit = /^HIT (\d) ([0-9a-f]+) (\d)$/m.exec(text);
      assert.ok(hit, text);
      assert.equal(hit[2], handler.replace(/^0+/, ''), 'stopped at the handler');
      assert.equal(hit[3], '1', 'in S-mode');
      assert.match(text, new RegExp(`Thread ${hit[1]} hit Breakpoint 1`), 'the stop names the thread GDB reports as current');
      assert.match(text, new RegExp(`\\* ${hit[1]} +Thread ${hit[1]} \\(hart ${Number(hit[1]) - 1}, running, live\\)`), text);
    } finally {
      if (vm.proc.exitCode === null) vm.proc.kill('SIGKILL');
    }
  });
});
