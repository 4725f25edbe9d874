// Runs Debian's gdb-multiarch in batch mode against a GDB remote stub: the
// tests' debugger, for tsvisor's stub and QEMU's alike.

import { spawn, spawnSync } from 'node:child_process';

/** Run `commands` after connecting to 127.0.0.1:port; resolves with gdb's stdout and stderr. */
export function gdb(port: number, commands: string[], timeoutMs = 300_000): Promise<string> {
  const args = ['-nx', '-batch', '-ex', 'set architecture riscv:rv64', '-ex', 'set confirm off', '-ex', 'set pagination off',
    '-ex', 'set tcp connect-timeout 60', '-ex', 'set remotetimeout 60', '-ex', `target remote 127.0.0.1:${port}`, ...commands.flatMap((c) => ['-ex', c])];
  return new Promise((resolve, reject) => {
    const p = spawn('gdb-multiarch', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`gdb did not finish in ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    p.on('exit', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

/** The symbols of an ELF file and their addresses (riscv64-linux-gnu-nm). */
export function elfSymbols(elf: string): Map<string, bigint> {
  const r = spawnSync('riscv64-linux-gnu-nm', [elf], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`riscv64-linux-gnu-nm ${elf} failed: ${r.stderr}`);
  return new Map(r.stdout.trim().split('\n').map((l) => l.split(' ')).map(([a, , n]) => [n, BigInt('0x' + a)]));
}
