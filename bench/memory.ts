// Host memory of a booted guest: the resident set of `tsvisor run` and of QEMU
// with the same kernel, initramfs and 512 MiB, read from /proc after the shell
// prompt appears. For tsvisor it also reports how much of the guest RAM mapping
// is resident (RAM the guest actually touched), from /proc/PID/smaps: the
// speed issue's target is RSS <= touched guest RAM + 64 MiB.
//
//   npm run bench:memory -- [--json]

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ensureDefaultGuest } from '../src/image/default-guest.js';
import { ConsoleSession } from './lib/console.js';
import { TSVISOR_BIN } from './lib/guest-build.js';
import { cpuModel, qemuVersion } from './lib/host.js';
import { killAll } from './lib/proc.js';

const MEM_MIB = 512;
const APPEND = 'console=ttyS0';

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/**
 * Resident KiB of the wasm memory holding guest RAM: the readable-writable anonymous
 * mapping a little larger than guest RAM (V8 reserves more address space around it,
 * but as separate inaccessible mappings).
 */
function guestRamResidentKiB(pid: number): number | null {
  let best: { size: number; rss: number } | null = null;
  let cur: { size: number; rss: number } | null = null;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ 0\s*$/.exec(line);
    if (head) {
      cur = { size: (parseInt(head[2], 16) - parseInt(head[1], 16)) / 1024, rss: 0 };
      const fits = head[3].startsWith('rw') && cur.size >= MEM_MIB * 1024 && cur.size <= (MEM_MIB + 64) * 1024;
      if (fits && (!best || cur.size > best.size)) best = cur;
    } else if (line.startsWith('Rss:') && cur) cur.rss = Number(line.split(/\s+/)[1]);
  }
  return best ? best.rss : null;
}

async function measure(cmd: string, args: string[]): Promise<{ rss: number; guest: number | null }> {
  const s = new ConsoleSession(cmd, args);
  try {
    await s.waitForShell(300_000);
    await new Promise((r) => setTimeout(r, 3000)); // let the boot's last work settle
    const pid = s.child.pid!;
    return { rss: rssKiB(pid), guest: guestRamResidentKiB(pid) };
  } finally {
    await s.poweroff();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { json: { type: 'boolean', default: false } } });
  const say = (t: string) => process.stderr.write(t + '\n');
  const g = await ensureDefaultGuest({ progress: false, log: (t) => say(t.replace(/\n$/, '')) });
  say('qemu: booting');
  const q = await measure('qemu-system-riscv64', ['-M', 'virt', '-m', `${MEM_MIB}M`, '-nographic', '-kernel', g.kernel, '-initrd', g.initrd, '-append', APPEND]);
  say('tsvisor: booting');
  const t = await measure(process.execPath, [TSVISOR_BIN, 'run', '--kernel', g.kernel, '--initrd', g.initrd, '--append', APPEND, '--mem', `${MEM_MIB}M`, '--net', 'none']);
  const mib = (k: number) => (k / 1024).toFixed(0);
  const overhead = t.guest === null ? null : t.rss - t.guest;
  const result = {
    date: new Date().toISOString().slice(0, 10), cpu: cpuModel(), qemu: qemuVersion(), node: process.version,
    qemuRssMiB: Number(mib(q.rss)), tsvisorRssMiB: Number(mib(t.rss)),
    tsvisorGuestRamResidentMiB: t.guest === null ? null : Number(mib(t.guest)),
    tsvisorOverheadMiB: overhead === null ? null : Number(mib(overhead)),
    targetMet: overhead === null ? null : overhead <= 64 * 1024,
  };
  if (values.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  else {
    process.stdout.write(
      [
        '',
        `Resident memory after booting the default guest to its prompt (${MEM_MIB} MiB guest RAM)`,
        `  QEMU:    ${result.qemuRssMiB} MiB`,
        `  tsvisor: ${result.tsvisorRssMiB} MiB, of which guest RAM mapping resident ${result.tsvisorGuestRamResidentMiB ?? '?'} MiB` +
          ` (includes the core's 16 MiB of tables)`,
        `  tsvisor beyond touched guest RAM: ${result.tsvisorOverheadMiB ?? '?'} MiB (target 64 MiB: ${result.targetMet === null ? 'not measured' : result.targetMet ? 'met' : 'NOT met'})`,
        `  ${result.date}; ${result.cpu}; node ${result.node}; ${result.qemu}`,
        '',
      ].join('\n'),
    );
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:memory: ${e instanceof Error ? e.message : String(e)}\n`);
  killAll();
  process.exit(1);
});
