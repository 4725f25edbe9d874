// A full garbage collection of the calling thread's isolate, to free the code
// space of dropped translations (see Jit's onFlush). Each thread that runs
// translated code (the VM's worker, every hart thread) makes its own: `gc` is
// per isolate. Undefined where V8 refuses the flag.

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export function makeCollectGarbage(): (() => void) | undefined {
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
}
