// Makes Jazzer.js's native libFuzzer addon loadable on this host. The npm package
// ships prebuilt addons only (no sources); the Linux x64 one needs glibc 2.38 and
// GLIBCXX_3.4.32 for three symbols. When loading fails for that reason, we
// compile fuzz/compat/glibc-compat.cc (g++), write a copy of the addon whose
// references to those two symbol versions are marked weak (VER_FLG_WEAK in
// .gnu.version_r, so the loader no longer insists on them), and preload the
// stand-ins. The copy goes to dist/prebuilds inside the package, which its
// loader prefers; the original file is left untouched.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const VER_FLG_WEAK = 2;
const NEWER_VERSIONS = new Set(['GLIBC_2.38', 'GLIBCXX_3.4.32']);

export interface JazzerEnv {
  /** Environment for the fuzzing process (LD_PRELOAD when the stand-ins are needed). */
  env: NodeJS.ProcessEnv;
  /** The Jazzer.js command-line entry point. */
  cli: string;
  note: string;
}

/** Why `addon` cannot be loaded (with libFuzzer's flag parsing run, so lazily bound symbols count), or null. */
function loadError(env: NodeJS.ProcessEnv, root: string, addon: string): string | null {
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(addon)})`], { cwd: root, env, encoding: 'utf8' });
  return r.status === 0 ? null : (r.stderr.split('\n').find((l) => l.startsWith('Error')) ?? r.stderr.trim());
}

/** Mark the verneed entries naming NEWER_VERSIONS weak in an ELF64 little-endian shared object. */
export function weakenVersionNeeds(elf: Uint8Array): { out: Uint8Array; weakened: string[] } {
  // A fresh copy at offset 0 (a Buffer's slice() would share the input's memory).
  const out = new Uint8Array(elf);
  const dv = new DataView(out.buffer);
  if (dv.getUint32(0) !== 0x7f454c46 || out[4] !== 2 || out[5] !== 1) throw new Error('not an ELF64 little-endian file');
  const shoff = Number(dv.getBigUint64(0x28, true));
  const shentsize = dv.getUint16(0x3a, true);
  const shnum = dv.getUint16(0x3c, true);
  const SHT_GNU_VERNEED = 0x6ffffffe;
  const weakened: string[] = [];
  for (let i = 0; i < shnum; i++) {
    const sh = shoff + i * shentsize;
    if (dv.getUint32(sh + 4, true) !== SHT_GNU_VERNEED) continue;
    const link = dv.getUint32(sh + 40, true);
    const strOff = Number(dv.getBigUint64(shoff + link * shentsize + 24, true));
    const str = (o: number): string => {
      let e = strOff + o;
      while (out[e] !== 0) e++;
      return Buffer.from(out.subarray(strOff + o, e)).toString('latin1');
    };
    let vn = Number(dv.getBigUint64(sh + 24, true));
    for (;;) {
      const cnt = dv.getUint16(vn + 2, true);
      let aux = vn + dv.getUint32(vn + 8, true);
      for (let k = 0; k < cnt; k++) {
        const name = str(dv.getUint32(aux + 8, true));
        if (NEWER_VERSIONS.has(name)) {
          dv.setUint16(aux + 4, dv.getUint16(aux + 4, true) | VER_FLG_WEAK, true);
          weakened.push(name);
        }
        const next = dv.getUint32(aux + 12, true);
        if (next === 0) break;
        aux += next;
      }
      const nextVn = dv.getUint32(vn + 12, true);
      if (nextVn === 0) break;
      vn += nextVn;
    }
  }
  return { out, weakened };
}

export function setupJazzer(root: string): JazzerEnv {
  const require = createRequire(join(root, 'package.json'));
  const cli = require.resolve('@jazzer.js/core/dist/cli.js');
  const env = { ...process.env };
  const fuzzerDir = dirname(require.resolve('@jazzer.js/fuzzer/package.json'));
  const original = join(fuzzerDir, 'prebuilds', `fuzzer-${process.platform}-${process.arch}.node`);
  const patched = join(fuzzerDir, 'dist', 'prebuilds', `fuzzer-${process.platform}-${process.arch}.node`);
  const first = loadError(env, root, original);
  if (first === null) {
    rmSync(patched, { force: true });
    return { env, cli, note: 'Jazzer.js prebuilt addon loads as shipped' };
  }
  if (!/GLIBC_2\.38|GLIBCXX_3\.4\.32/.test(first) || process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`Jazzer.js cannot load its native addon here: ${first}`);
  }
  const cacheDir = join(root, 'node_modules', '.cache', 'tsvisor-fuzz');
  const shim = join(cacheDir, 'glibc-compat.so');
  const shimSrc = join(root, 'fuzz', 'compat', 'glibc-compat.cc');
  mkdirSync(cacheDir, { recursive: true });
  if (!existsSync(shim) || statSync(shim).mtimeMs < statSync(shimSrc).mtimeMs) {
    const cc = spawnSync('g++', ['-O2', '-shared', '-fPIC', '-o', shim, shimSrc], { encoding: 'utf8' });
    if (cc.status !== 0) throw new Error(`cannot build the glibc stand-ins (g++): ${cc.error?.message ?? cc.stderr.trim()}`);
  }
  if (!existsSync(patched)) {
    const { out, weakened } = weakenVersionNeeds(readFileSync(original));
    if (weakened.length === 0) throw new Error(`Jazzer.js addon: no ${[...NEWER_VERSIONS].join('/')} references to weaken, yet it does not load: ${first}`);
    mkdirSync(dirname(patched), { recursive: true });
    writeFileSync(patched, out);
  }
  env.LD_PRELOAD = env.LD_PRELOAD ? `${shim}:${env.LD_PRELOAD}` : shim;
  const second = loadError(env, root, patched);
  if (second !== null) throw new Error(`Jazzer.js addon still does not load with the glibc stand-ins: ${second}`);
  return { env, cli, note: 'Jazzer.js prebuilt addon with weak GLIBC_2.38/GLIBCXX_3.4.32 needs and preloaded stand-ins' };
}
