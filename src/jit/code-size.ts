// Where the bytes of translated code go, by kind of guest instruction: the
// measure that says which emitter to make smaller (wasm bytes cost V8 compile
// time, code space, and instruction cache). Counted for every translation; the
// cost is one subtraction per instruction.

export const CODE_KINDS = ['load', 'store', 'alu', 'muldiv', 'branch', 'jump', 'fp', 'amo', 'csr', 'system', 'fence', 'writeback', 'frame'] as const;
export type CodeKind = (typeof CODE_KINDS)[number];

export interface CodeSize {
  /** Guest instructions translated, by kind ('frame' counts blocks). */
  insns: Record<CodeKind, number>;
  /** Wasm body bytes, by kind ('writeback': the register stores of the exits; 'frame': the rest of each block's prologue and epilogue). */
  bytes: Record<CodeKind, number>;
  /** Of the load and store bytes: the out-of-TLB part (slow-path call and its exits). */
  memSlowBytes: number;
}

function zero(): Record<CodeKind, number> {
  return Object.fromEntries(CODE_KINDS.map((k) => [k, 0])) as Record<CodeKind, number>;
}

export function newCodeSize(): CodeSize {
  return { insns: zero(), bytes: zero(), memSlowBytes: 0 };
}

export function addCodeSize(into: CodeSize, from: CodeSize): void {
  for (const k of CODE_KINDS) {
    into.insns[k] += from.insns[k];
    into.bytes[k] += from.bytes[k];
  }
  into.memSlowBytes += from.memSlowBytes;
}

/** The kind of an instruction by its major opcode (bits 6..2) and, for OP, funct7. */
export function codeKindOf(insn: number): CodeKind {
  switch ((insn >>> 2) & 31) {
    case 0: return 'load';
    case 8: return 'store';
    case 1: return 'load';
    case 9: return 'store';
    case 12: case 14: return insn >>> 25 === 1 ? 'muldiv' : 'alu';
    case 4: case 6: case 5: case 13: return 'alu';
    case 24: return 'branch';
    case 25: case 27: return 'jump';
    case 11: return 'amo';
    case 3: return 'fence';
    case 28: return ((insn >>> 12) & 7) === 0 ? 'system' : 'csr';
    default: return 'fp';
  }
}

/** One line for --stats: bytes per instruction of each kind, and the share of the total. */
export function codeSizeLine(s: CodeSize): string {
  let total = 0;
  for (const k of CODE_KINDS) total += s.bytes[k];
  if (total === 0) return 'none';
  const parts: string[] = [];
  for (const k of CODE_KINDS) {
    if (s.insns[k] === 0 && s.bytes[k] === 0) continue;
    if (k === 'writeback') {
      parts.push(`${k} ${(s.bytes[k] / Math.max(1, s.insns.frame)).toFixed(0)} B per block (${((100 * s.bytes[k]) / total).toFixed(0)}%)`);
      continue;
    }
    const per = s.bytes[k] / s.insns[k];
    parts.push(`${k} ${per.toFixed(0)} B x ${s.insns[k].toLocaleString('en-US')} (${((100 * s.bytes[k]) / total).toFixed(0)}%)`);
  }
  const mem = s.bytes.load + s.bytes.store;
  const slow = mem > 0 ? ` (TLB-miss paths ${((100 * s.memSlowBytes) / total).toFixed(0)}% of all bytes)` : '';
  return `${parts.join(', ')}${slow}`;
}
