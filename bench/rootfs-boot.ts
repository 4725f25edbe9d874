// Boot of the Debian root disk to its login prompt, QEMU and tsvisor one after
// the other on the same host: the same kernel and initramfs (the default
// guest's), the same command line, 1 GiB of RAM, and each on its own fresh
// qcow2 overlay of the disk `tsvisor image build --rootfs` made (the base is
// never written). The time is from process start to systemd's `login:` prompt
// on ttyS0; the emulator is then killed (the overlay is thrown away).
//
//   npm run bench:rootfs -- [--json] [--timeout SECONDS]

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureDefaultGuest } from '../src/image/default-guest.js';
import { checkCachedRootfs } from '../src/image/rootfs.js';
import { ROOTFS_APPEND } from '../src/image/rootfs-disk.js';
import { ConsoleSession } from './lib/console.js';
import { TSVISOR_BIN } from './lib/guest-build.js';
import { cpuModel, qemuVersion } from './lib/host.js';
import { killAll } from './lib/proc.js';

const APPEND = `console=ttyS0 ${ROOTFS_APPEND}`;
const MEM = '1G';
const LOGIN = /login: $/m;

async function bootToLogin(cmd: string, args: string[], timeoutMs: number): Promise<number> {
  const s = new ConsoleSession(cmd, args);
  try {
    return await s.waitFor(LOGIN, timeoutMs, 'waiting for the login prompt');
  } finally {
    await s.kill();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { json: { type: 'boolean', default: false }, timeout: { type: 'string', default: '1200' } } });
  const timeoutMs = Number(values.timeout) * 1000;
  const say = (t: string) => process.stderr.write(t + '\n');
  const root = await checkCachedRootfs();
  if (!root) throw new Error('no root disk in the cache: build it first with `node bin/tsvisor.js image build --rootfs` (about 30 minutes)');
  const g = await ensureDefaultGuest({ progress: false, log: (t) => say(t.replace(/\n$/, '')) });
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-bench-rootfs-'));
  try {
    const overlay = (name: string) => {
      const p = join(dir, `${name}.qcow2`);
      execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', root.path, p]);
      return p;
    };
    say('qemu: booting the root disk');
    const qemuOverlay = overlay('qemu');
    const q = await bootToLogin('qemu-system-riscv64', [
      '-M', 'virt', '-m', MEM, '-nographic', '-nic', 'none', '-kernel', g.kernel, '-initrd', g.initrd, '-append', APPEND,
      '-drive', `file=${qemuOverlay},format=qcow2,if=none,id=hd0`, '-device', 'virtio-blk-device,drive=hd0',
    ], timeoutMs);
    say(`qemu: login prompt after ${q.toFixed(1)} s`);
    say('tsvisor: booting the root disk');
    const t = await bootToLogin(process.execPath, [
      TSVISOR_BIN, 'run', '--kernel', g.kernel, '--initrd', g.initrd, '--append', APPEND, '--mem', MEM, '--net', 'none',
      '--disk', overlay('tsvisor'),
    ], timeoutMs);
    say(`tsvisor: login prompt after ${t.toFixed(1)} s`);
    const result = {
      date: new Date().toISOString().slice(0, 10), cpu: cpuModel(), qemu: qemuVersion(), node: process.version,
      qemuSeconds: Number(q.toFixed(1)), tsvisorSeconds: Number(t.toFixed(1)), ratio: Number((t / q).toFixed(2)),
      targetMet: t / q <= 2,
    };
    if (values.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    else {
      process.stdout.write(
        [
          '',
          `Boot of the Debian root disk to its login prompt (${MEM} RAM, "${APPEND}")`,
          `  QEMU:    ${result.qemuSeconds} s`,
          `  tsvisor: ${result.tsvisorSeconds} s`,
          `  ratio:   ${result.ratio}x QEMU's time (target at most 2x: ${result.targetMet ? 'met' : 'NOT met'})`,
          `  ${result.date}; ${result.cpu}; node ${result.node}; ${result.qemu}`,
          '',
        ].join('\n'),
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:rootfs: ${e instanceof Error ? e.message : String(e)}\n`);
  killAll();
  process.exit(1);
});
