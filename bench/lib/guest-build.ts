// Building the benchmarks' riscv64 C programs and packing them into an extra
// initramfs layer on top of the default guest's initramfs.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { writeCpio, withParents, type CpioEntry } from '../../src/image/cpio.js';
import { compiler } from './host.js';

// bench/lib/*.ts is compiled to dist/bench/lib/*.js; the repo root is three levels up.
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const GUEST_SRC = join(REPO_ROOT, 'bench', 'guest');
export const TSVISOR_BIN = join(REPO_ROOT, 'bin', 'tsvisor.js');

export const CFLAGS = ['-O2', '-static', '-Wall', '-Wextra'];

/**
 * Builds bench/guest/<name>.c for each name into `outDir` with the riscv64
 * compiler, unless the binary is newer than the source and every header there.
 */
export function buildGuestPrograms<N extends string>(names: readonly N[], outDir: string, say: (s: string) => void): Map<N, string> {
  mkdirSync(outDir, { recursive: true });
  const headers = readdirSync(GUEST_SRC).filter((f) => f.endsWith('.h')).map((f) => join(GUEST_SRC, f));
  const headerTime = Math.max(0, ...headers.map((h) => statSync(h).mtimeMs));
  const out = new Map<N, string>();
  for (const name of names) {
    const src = join(GUEST_SRC, `${name}.c`);
    const bin = join(outDir, name);
    const srcTime = Math.max(statSync(src).mtimeMs, headerTime);
    if (!existsSync(bin) || statSync(bin).mtimeMs < srcTime) {
      say(`building ${name} (${compiler()} ${CFLAGS.join(' ')})`);
      const tmp = `${bin}.tmp`;
      const r = spawnSync(compiler(), [...CFLAGS, '-o', tmp, src], { encoding: 'utf8' });
      if (r.error) throw new Error(`cannot run ${compiler()}: ${r.error.message} (install gcc-riscv64-linux-gnu)`);
      if (r.status !== 0) throw new Error(`building ${name} failed:\n${r.stderr}`);
      renameSync(tmp, bin);
    }
    out.set(name, bin);
  }
  return out;
}

/** Writes `baseInitrd` followed by a gzipped newc layer holding /bench/<name> for each binary. */
export function buildBenchInitrd(baseInitrd: string, bins: ReadonlyMap<string, string>, outPath: string): void {
  const entries: CpioEntry[] = [...bins].map(([name, path]) => ({
    path: `bench/${name}`,
    type: 'file',
    mode: 0o755,
    mtime: Math.floor(statSync(path).mtimeMs / 1000),
    data: readFileSync(path),
  }));
  const layer = gzipSync(writeCpio(withParents(entries)), { level: 6 });
  const base = readFileSync(baseInitrd);
  // Linux unpacks concatenated archives one after the other; keep the second
  // one 4-byte aligned (the unpacker skips the NUL padding between them).
  const padLen = (4 - (base.length % 4)) % 4;
  const tmp = `${outPath}.tmp`;
  writeFileSync(tmp, Buffer.concat([base, Buffer.alloc(padLen), layer]));
  renameSync(tmp, outPath);
}
