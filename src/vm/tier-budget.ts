// V8's tier-up budget for each module of translated code.
//
// V8 compiles a wasm function with its baseline compiler (Liftoff) first and
// moves it to TurboFan once it has run about `--wasm-tiering-budget` bytes of
// code. The budget is read when a module is compiled, so the worker can give
// each module its own by setting the flag around the compile.
//
// A boot translates about 11,000 blocks that mostly run a few hundred times;
// with V8's default budget (1.8 MB) thousands of them reach TurboFan and that
// compile work delays the boot on a small host, so modules get a large budget
// (20 MB). But the guest kernel's paths that a workload runs in a loop after
// the boot (fork, exec, page faults, mmap: thousands of runs each) then stay
// in Liftoff code (a warmed-up fork loop ran about 1.3x faster under
// `node --no-liftoff`). With TSVISOR_TIER_BUDGET_KERNEL=N, once the
// guest has been idle (its boot is over) modules of kernel code get budget N
// and user code keeps the large one (a new program's code is mostly run a few
// times; compiling it twice costs more than it saves). Off by default: on the
// shared 2-core host it made a repeated fork loop faster but the first run of
// each benchmark (which pays for translating the kernel again and for
// TurboFan's compiles) slower; README, "Fork and exec: the interpreter and
// V8's tiers".

import { setFlagsFromString } from 'node:v8';

/** The budget of boot code and of user code (bytes of wasm run before TurboFan). */
export const BUDGET_DEFAULT = budgetFrom(process.env.TSVISOR_WASM_TIERING_BUDGET, 20_000_000);
/** The budget of kernel code translated after the guest's first idle period. */
export const BUDGET_KERNEL_AFTER_BOOT = budgetFrom(process.env.TSVISOR_TIER_BUDGET_KERNEL, BUDGET_DEFAULT);

/**
 * A budget from the environment (bytes, 1000 to 1e9), else `fallback`.
 * TSVISOR_WASM_TIERING_BUDGET is for measurements: on the Debian userland job
 * (bench/userland.ts) lower budgets cost more CPU (1.8 MB: +17%, 300 KB: +42%)
 * and 100 MB gained nothing.
 */
function budgetFrom(v: string | undefined, fallback: number): number {
  const n = Number(v);
  return v !== undefined && Number.isInteger(n) && n >= 1000 && n <= 1e9 ? n : fallback;
}

function setBudget(bytes: number): boolean {
  try {
    setFlagsFromString(`--wasm-tiering-budget=${bytes}`);
    return true;
  } catch {
    return false; // an engine without the flag keeps its default
  }
}

/** Sets the process's default budget; call before the first module is compiled. */
export function setDefaultBudget(): void {
  setBudget(BUDGET_DEFAULT);
}

export class TierBudget {
  /** The guest has been idle once: its boot is over. */
  booted = false;

  /**
   * The guest waits in WFI. The first time, its boot is over: returns true when
   * the translations should be dropped, so that the kernel paths a workload runs
   * next (many of them translated during the boot, with the boot's budget) are
   * translated again with the budget for after the boot.
   */
  idled(): boolean {
    if (this.booted) return false;
    this.booted = true;
    return BUDGET_KERNEL_AFTER_BOOT !== BUDGET_DEFAULT;
  }

  /** For Jit.compileWith. */
  readonly compileWith = <T>(kernel: boolean, compile: () => T): T => {
    if (!kernel || !this.booted || BUDGET_KERNEL_AFTER_BOOT === BUDGET_DEFAULT) return compile();
    setBudget(BUDGET_KERNEL_AFTER_BOOT);
    try {
      return compile();
    } finally {
      setBudget(BUDGET_DEFAULT);
    }
  };
}
