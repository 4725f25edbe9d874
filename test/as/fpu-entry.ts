// Test entry for the FP unit: exports execFp plus a few raw softfloat
// functions for unit tests. Compiled with --importMemory (the hart state is
// at 1 MiB, so the memory comes from the test).
import { execFp } from "../../src/cpu/fpu";
import { STATE, F_OFF, X_OFF, FFLAGS_OFF, FRM_OFF } from "../../src/cpu/state";

export function exec(insn: u32): bool {
  return execFp(insn);
}
export function stateBase(): u32 { return STATE; }
export function fOff(): u32 { return F_OFF; }
export function xOff(): u32 { return X_OFF; }
export function fflagsOff(): u32 { return FFLAGS_OFF; }
export function frmOff(): u32 { return FRM_OFF; }

