// Environment switches of the translator, for measuring and reading its code.
//
// TSVISOR_JIT_REGIONS=off|user|all: which code may be translated as regions
// (Jit.regions; user by default).
//
// TSVISOR_JIT_SHARE=off: each hart thread of a multi-hart VM translates for
// itself instead of taking the other harts' translations (Jit.sharing).
//
// TSVISOR_JIT_DUMP=DIR: write each module of translated code to DIR as
// mNNNNN.wasm with mNNNNN.txt listing its blocks' guest pcs (block i is the
// module's export `bi`), for reading the code the translator makes (binaryen's
// wasm-dis, or node --print-wasm-code on a small harness). A debugging aid; off
// unless the variable is set.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function jitDumper(dir: string): (bytes: Uint8Array, vas: bigint[]) => void {
  mkdirSync(dir, { recursive: true });
  let n = 0;
  return (bytes, vas) => {
    const name = `m${String(n++).padStart(5, '0')}`;
    try {
      writeFileSync(join(dir, `${name}.wasm`), bytes);
      writeFileSync(join(dir, `${name}.txt`), vas.map((va, i) => `b${i} ${va.toString(16)}`).join('\n') + '\n');
    } catch {
      // a full disk ends the dump, not the VM
    }
  };
}

/** Jit.regions from TSVISOR_JIT_REGIONS (anything else: the default). */
export function jitRegionsFromEnv(): 'user' | 'all' | 'off' {
  const v = process.env.TSVISOR_JIT_REGIONS;
  return v === 'off' || v === 'all' ? v : 'user';
}

/** Hart threads share their translations unless TSVISOR_JIT_SHARE=off. */
export function jitShareFromEnv(): boolean {
  return process.env.TSVISOR_JIT_SHARE !== 'off';
}
