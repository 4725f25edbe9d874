// The one source of the wasm core's memory layout: where the hart state, the
// software TLB, the translator's tables and guest RAM sit in linear memory.
// The core (AssemblyScript) imports this file; scripts/gen-layout.mjs turns it
// into src/machine/layout.generated.ts for the host and the translator, and
// src/cpu/index.ts exports every constant as a wasm global, so a test can
// compare each name the host sees with what the compiled core uses.
// Keep to `export const NAME: u32 = <literal>;` with comments: the generator
// accepts nothing else.

// ---- Hart state block ----

/** Hart state block (registers) lives at 1 MiB in linear memory. */
export const STATE: u32 = 0x100000;
/** Bytes of the hart state block (cleared at reset). */
export const STATE_SIZE: u32 = 0x10000;
/** x0..x31, u64 each. x0 is never written. */
export const X_OFF: u32 = 0;
/** f0..f31, raw u64 bits each; single-precision values are NaN-boxed. */
export const F_OFF: u32 = 256;
/** pc, u64. */
export const PC_OFF: u32 = 512;
/** Accrued FP exception flags (NV=16 DZ=8 OF=4 UF=2 NX=1), u32. */
export const FFLAGS_OFF: u32 = 520;
/** Dynamic rounding mode (0..7), u32. */
export const FRM_OFF: u32 = 524;
/** Host sets this word to non-zero when an MMIO access hit no device. */
export const MMIO_FAULT_OFF: u32 = 1024;
/** Trap counters: u64 per exception cause, then (TRAP_COUNTS_INT_OFF later) per interrupt cause. */
export const TRAP_COUNTS_OFF: u32 = 0x800;
export const TRAP_COUNTS_INT_OFF: u32 = 512;
/** The last trap: cause, epc, tval (u64 each). */
export const LAST_TRAP_OFF: u32 = 0x1000;
/** Slow-path translations per access kind (fetch, load, store): u64 counters for --stats. */
export const WALK_COUNTS_OFF: u32 = 0x1200;
/** Data TLB lookups (loads, stores): u64 counters; with the slow paths they give the hit rate. */
export const LOOKUP_COUNTS_OFF: u32 = 0x1240;
/** System-path event counters for --stats: SYS_COUNTS_N u64s, named in src/cpu/counters.ts (indices) and src/machine/cpu-core.ts (names). */
export const SYS_COUNTS_OFF: u32 = 0x1600;
export const SYS_COUNTS_N: u32 = 32;

// ---- Translator (JIT) words inside the hart state block ----

/** Current TLB set bases (fetch, load, store: u32 each), mirrored for translated code. */
export const TLB_BASES_OFF: u32 = 0x1100;
/** Set by the slow-path helpers translated code calls: 1 = the access trapped, 2 = leave the block. */
export const JIT_FLAG_OFF: u32 = 0x1110;
/** Chained execution: instructions retired so far (u32), the chain's budget (u32), link epoch (u32). */
export const JIT_DONE_OFF: u32 = 0x1114;
export const JIT_BUDGET_OFF: u32 = 0x1118;
/** Bumped whenever a link between blocks may have gone stale (TLB flush, retired code, cache flush). */
export const JIT_EPOCH_OFF: u32 = 0x111c;
/**
 * The epoch of links into user code (made while in U-mode), bumped with the
 * other and also alone on an address-space switch that keeps the kernel's
 * translations: a link slot holds the address of the epoch word it follows.
 */
export const JIT_USER_EPOCH_OFF: u32 = 0x112c;
/**
 * The epoch of links whose target is in the exit's own page (a block lies in
 * one page): a TLB flush cannot stale them, since the block that exits is
 * only entered while its page maps where it was translated from, and then so
 * does the target. Bumped with the others on everything else (retired code,
 * FENCE.I, a cache flush), never alone.
 */
export const JIT_CODE_EPOCH_OFF: u32 = 0x1154;
/** CODE_RETIRES as this hart last dropped all its links (see fenceICode in mmu.ts). */
export const JIT_RETIRES_SEEN_OFF: u32 = 0x1158;
/** Link slot of the last exit that could not chain (the dispatcher fills it), or 0. */
export const JIT_LAST_EXIT_OFF: u32 = 0x1120;
/** Set when a hot loop was queued: the host translates at once instead of batching. */
export const JIT_URGENT_OFF: u32 = 0x1124;
/** 1 while mstatus.FS is Dirty (translated FP loads/stores run only then), mirrored for translated code. */
export const FS_DIRTY_OFF: u32 = 0x1128;
/** Tags the TLB compares in the upper bits of an entry's page number (fetch, data: u64 each), mirrored for translated code. */
export const TLB_TAGS_OFF: u32 = 0x1130;
/** Address of the current privilege's part of the jump cache (u32), mirrored for translated code. */
export const JIT_JCACHE_BASE_OFF: u32 = 0x1150;
/** Which block of a region (several translated blocks in one wasm function) the entry function of one of its blocks asks for (u32; src/jit/translate.ts, regionEntryBody). */
export const JIT_REGION_ENTRY_OFF: u32 = 0x1148;
/**
 * Jump cache: targets of indirect jumps (jalr: returns, calls through pointers,
 * switch tables) and the blocks translated there, so a translated indirect
 * jump whose own link slot holds another target finds its block without the
 * core. One part per privilege (U, S, -, M: a block reached in one privilege
 * is never entered from another), each JIT_JCACHE_ENTRIES entries of 16 bytes
 * {target u64, fn u32, len u32}, indexed by target bits 1..9. Parts are filled
 * with ones (an odd target no jump has) whenever the link epoch they follow is
 * bumped, instead of each entry carrying an epoch.
 */
export const JIT_JCACHE_OFF: u32 = 0x8000;
export const JIT_JCACHE_ENTRIES: u32 = 512;
/** A word only the interpreter's full fence touches (a locked add of 0: this compiler's atomic.fence does not validate). */
export const FENCE_WORD_OFF: u32 = 0x1140;
/** Set by another thread (harts on threads of their own): leave run() at the next block head; the hart's thread clears it. */
export const HART_ATTN_OFF: u32 = 0x1144;
/**
 * Two bitmaps of LINK_PAGES_BITS bits of the pages block links point into since
 * the last bump of their epoch (a page's bit: see linkBit in mmu.ts): first
 * links made outside U-mode (the global epoch), then links made in U-mode (the
 * user epoch).
 */
export const LINK_PAGES_OFF: u32 = 0x6000;
export const LINK_PAGES_BITS: u32 = 32768;
/** TLB context per ASID: ASID_COUNT entries of {satp u64, context u32, pad u32}. */
export const ASID_TABLE_OFF: u32 = 0x4000;
export const ASID_COUNT: u32 = 512;
/**
 * PMP entries (src/cpu/pmp.ts; between the compile queue, which ends at 0x3010,
 * and the ASID table; the jump cache has 0x8000 up): 16 config bytes, then
 * pmpaddr, decoded low and high bounds (16 u64 each), 0x190 bytes.
 */
export const PMP_OFF: u32 = 0x3100;
/** Sdtrig triggers (src/cpu/triggers.ts): tdata1 then tdata2, 4 u64 each. */
export const TRIG_OFF: u32 = 0x3300;
/** Compile queue: u32 count, then entries of {vpc: u64, hpc: u32, pad} (16 bytes each). */
export const JIT_QUEUE_OFF: u32 = 0x2000;
export const JIT_QUEUE_MAX: u32 = 256;

// ---- Tables below guest RAM ----

/** Software TLB: 3 kinds (fetch, load, store) x 4 sets x TLB_SIZE entries of 16 bytes. */
export const TLB_BASE: u32 = 0x110000;
export const TLB_SIZE: u32 = 1024;
/** Expansion of every 16-bit encoding (u32 each), filled per encoding on first use (0: not yet, 1: illegal; see rvcExpand). */
export const RVC_TABLE: u32 = 0x140000;
/** Debugger: pc breakpoints, DEBUG_BP_MAX guest virtual addresses (u64 each; a slot is used when its bit is set in the core's mask). */
export const DEBUG_BP: u32 = 0x180000;
export const DEBUG_BP_MAX: u32 = 64;
/**
 * SMP: the saved context of each hart that is not running (HART_CTX_MAX slots of
 * HART_CTX_SIZE bytes): u64 fields at 8 * (cpuStateGet field number), then the
 * x registers at HART_CTX_X_OFF, f registers at HART_CTX_F_OFF, fflags and frm
 * (u32 each) at HART_CTX_FP_OFF. The running hart's slot is stale.
 */
export const HART_CTX: u32 = 0x181000;
export const HART_CTX_SIZE: u32 = 0x1000;
/**
 * Shared by every hart: u32, how many times any hart retired a page of
 * translated code (retireCodePage). A FENCE.I drops a hart's links only if it
 * moved since the hart last did (Linux fences every hart's instruction fetch
 * for each new executable page it maps, most of them never translated).
 */
export const CODE_RETIRES: u32 = 0x189000;
export const HART_CTX_MAX: u32 = 8;
export const HART_CTX_X_OFF: u32 = 0x800;
export const HART_CTX_F_OFF: u32 = 0x900;
export const HART_CTX_FP_OFF: u32 = 0xa00;
/** Execution counts of block heads not yet translated: {hpc u32, count i32}. */
export const JIT_HOT: u32 = 0x1c0000;
export const JIT_HOT_SIZE: u32 = 16384;
/** Per guest-RAM page: u32 generation, bumped when a page holding translated code is written. */
export const PAGE_GEN: u32 = 0x200000;
/** Per guest-RAM page: u8, 1 while translated code exists for the page (stores take the slow path). */
export const CODE_PAGE: u32 = 0x600000;
/** Block cache: 2-way set associative, 32-byte entries {hpc u32, pad u32, vpc u64, fn u32, len u32, gen u32, page u32}. */
export const JIT_HASH: u32 = 0x800000;
export const JIT_HASH_SIZE: u32 = 65536;
/**
 * Link slots, 32 bytes each {fn u32, epoch u32, len u32, epoch word address u32, target u64, dynamic u32,
 * local u32 (the target is in the exit's page: see JIT_CODE_EPOCH_OFF)}, allocated by the host.
 */
export const JIT_LINKS: u32 = 0xa00000;
export const JIT_LINKS_MAX: u32 = 0x20000;
/**
 * Per guest-RAM page: u8, 1 once the page was written (slow-path stores, AMOs, page-table
 * A/D updates, device DMA). Live migration clears it to start a round; the store TLB is
 * flushed with it, so the next store to each page takes the slow path once and marks it.
 */
export const DIRTY_PAGE: u32 = 0xe00000;

// ---- Hart areas (SMP phase 2) ----

/**
 * Hart h's own copy of the per-hart tables is at the address above plus
 * h * HART_STRIDE: the state block (with the translator's words, compile queue,
 * ASID table and link maps), the TLB, the hot counts, the block cache and the
 * link slots. A core instance is told its hart (setHartArea) when harts run on
 * threads of their own; with one thread every hart uses hart 0's copy and
 * switches through HART_CTX. The other tables (HART_CTX, the RVC table, page
 * generations, code and dirty pages, debugger slots) and guest RAM are shared;
 * the copies of those windows in harts 1..7 stay unused (address space only).
 */
export const HART_STRIDE: u32 = 0x1000000;
export const HART_AREAS_MAX: u32 = 8;

/** Guest RAM (guest physical 0x8000_0000) starts after the last hart's window, at 128 MiB in linear memory. */
export const RAM_HOST: u32 = 0x8000000;
