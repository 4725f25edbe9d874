/*
 * FP oracle: runs RISC-V F/D computational instructions on the real ISA (the
 * test runs this under user-mode QEMU) for many operand bit patterns and
 * every rounding mode, and prints one line per case:
 *
 *   NAME INSN A B C FRM -> XRESULT FRESULT FFLAGS
 *   NAME INSN A B C FRM -> ILL
 *
 * (all numbers hex). A, B, C are loaded into both x11..x13 and f11..f13 (raw
 * 64-bit, so single-precision operands carry their NaN-box or deliberately
 * lack it), the instruction has rd = 10, rs1 = 11, rs2 = 12, rs3 = 13, and
 * XRESULT/FRESULT are x10/f10 afterwards (both start at zero). ILL means the
 * instruction raised SIGILL.
 *
 * Usage: fp-oracle [scale]   (scale multiplies the number of random cases)
 */
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

extern char fp_tmpl_start[], fp_tmpl_insn[], fp_tmpl_end[];

static char *code;
static size_t code_len;
static uint32_t *slot;
static sigjmp_buf jb;

static void on_ill(int sig) {
  (void)sig;
  siglongjmp(jb, 1);
}

static void set_insn(uint32_t w) {
  *slot = w;
  __builtin___clear_cache(code, code + code_len);
}

/* ---- deterministic PRNG (xorshift64*) ---- */
static uint64_t rs = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
  rs ^= rs >> 12;
  rs ^= rs << 25;
  rs ^= rs >> 27;
  return rs * 0x2545f4914f6cdd1dull;
}
static uint64_t rndn(uint64_t n) { return rnd() % n; }

/* ---- operand pools ---- */
#define BOX 0xffffffff00000000ull
static uint64_t poolD[256], poolS[256], poolI[256];
static int nD, nS, nI;

static uint64_t d2u(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }
static double u2d(uint64_t u) { double d; memcpy(&d, &u, 8); return d; }
static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static void addD(uint64_t v) { poolD[nD++] = v; poolD[nD++] = v ^ (1ull << 63); }
static void addS(uint32_t v) { poolS[nS++] = BOX | v; poolS[nS++] = BOX | (v ^ 0x80000000u); }

static void init_pools(void) {
  /* binary64 edge cases (each with both signs) */
  static const uint64_t d[] = {
    0, 1, 2, 0x000fffffffffffffull, 0x0008000000000000ull, 0x0010000000000000ull,
    0x0010000000000001ull, 0x001fffffffffffffull, 0x7fefffffffffffffull, 0x7fe0000000000000ull,
    0x3ff0000000000000ull, 0x3ff0000000000001ull, 0x3fffffffffffffffull, 0x3ff8000000000000ull,
    0x3fe0000000000000ull, 0x4000000000000000ull, 0x4004000000000000ull, 0x400c000000000000ull,
    0x7ff0000000000000ull, 0x7ff8000000000000ull, 0x7ff0000000000001ull, 0x7ff4000000000000ull,
    0x7fffffffffffffffull, 0x41dfffffffc00000ull /* 2^31-1 */, 0x41e0000000000000ull /* 2^31 */,
    0x41efffffffe00000ull /* 2^32-1 */, 0x41f0000000000000ull /* 2^32 */, 0x43e0000000000000ull /* 2^63 */,
    0x43dfffffffffffffull, 0x43f0000000000000ull /* 2^64 */, 0x43efffffffffffffull,
    0x41dfffffffe00000ull /* 2^31-0.5 */, 0x3cb0000000000000ull /* 2^-52 */, 0x3ca0000000000000ull,
    0x0000000000000003ull, 0x47efffffe0000000ull /* max float */, 0x47effffff0000000ull,
    0x380fffffe0000000ull, 0x3810000000000000ull /* float min normal */, 0x36a0000000000000ull,
    0x3690000000000000ull, 0x5fe0000000000000ull, 0x1ff0000000000000ull,
    0x4340000000000001ull, 0x433fffffffffffffull, 0x3fdfffffffffffffull, 0x3fe0000000000001ull,
  };
  for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) addD(d[i]);
  /* binary32 edge cases */
  static const uint32_t s[] = {
    0, 1, 2, 3, 0x007fffff, 0x00400000, 0x00800000, 0x00800001, 0x00ffffff, 0x7f7fffff,
    0x7f000000, 0x3f800000, 0x3f800001, 0x3fffffff, 0x3fc00000, 0x3f000000, 0x40000000,
    0x40200000, 0x40600000, 0x7f800000, 0x7fc00000, 0x7f800001, 0x7fa00000, 0x7fffffff,
    0x4effffff, 0x4f000000 /* 2^31 */, 0x4f7fffff, 0x4f800000 /* 2^32 */, 0x5f000000 /* 2^63 */,
    0x5effffff, 0x5f800000 /* 2^64 */, 0x5f7fffff, 0x34000000, 0x33800000, 0x3effffff,
    0x3f000001, 0x4b000001, 0x4affffff, 0x4b7fffff, 0x1f800000, 0x5f800001,
  };
  for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) addS(s[i]);
  /* improperly NaN-boxed single-precision register contents */
  poolS[nS++] = 0x3ff0000000000000ull;
  poolS[nS++] = 0x7fffffff3f800000ull;
  poolS[nS++] = 0x00000000bf800000ull;
  poolS[nS++] = 0xfffffffe00000001ull;
  /* integers */
  static const uint64_t in[] = {
    0, 1, 2, 3, 0x7fffffff, 0x80000000, 0xffffffff, 0x100000000ull, 0x7fffffffffffffffull,
    0x8000000000000000ull, 0xffffffffffffffffull, 0xfffffffffffffffeull, 0xffffffff80000000ull,
    0xffffffff7fffffffull, 0x0000000080000001ull, 0x1000001, 0x1000003, 0xffffff, 0x2000001,
    0x20000000000001ull, 0x20000000000003ull, 0x1fffffffffffffull, 0x7ffffffffffffc00ull,
    0x7ffffffffffffdffull, 0x7ffffffffffffe00ull, 0xfffffffffffff800ull, 0xfffffffffffffbffull,
    0x8000000000000001ull, 0x12345678deadbeefull, 0xfffffffffeffffffull, 0x00000000ff7fffffull,
    0xdeadbeef01000001ull, 0xabcdef0080000000ull, 0x0123456700ffffffull,
  };
  for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) poolI[nI++] = in[i];
}

/* ---- random operand generators ---- */
/* random binary64 with a random "shape": raw bits, sparse mantissa, tiny, near-integer, ... */
static uint64_t rand_d(void) {
  uint64_t sign = rnd() & (1ull << 63);
  uint64_t e, m;
  switch (rndn(8)) {
  case 0: return rnd();
  case 1: return poolD[rndn(nD)];
  case 2: e = rndn(2047); m = rnd() & ((1ull << 52) - 1); break;
  case 3: e = rndn(8); m = rnd() & ((1ull << 52) - 1); break; /* subnormal / tiny */
  case 4: e = 1023 + rndn(70) - 5; m = rnd() & ((1ull << 52) - 1); break; /* integer range */
  case 5: e = 1023 + rndn(64) - 2; m = (rnd() & ((1ull << 52) - 1)) & ~((1ull << rndn(53)) - 1); break;
  case 6: e = 2040 + rndn(7); m = rnd() & ((1ull << 52) - 1); break; /* huge */
  default: e = rndn(2047); m = (1ull << rndn(52)) | (1ull << rndn(52)); break; /* sparse */
  }
  return sign | (e << 52) | m;
}
static uint32_t rand_s32(void) {
  uint32_t sign = (uint32_t)rnd() & 0x80000000u;
  uint32_t e, m;
  switch (rndn(8)) {
  case 0: return (uint32_t)rnd();
  case 1: return (uint32_t)poolS[rndn(nS)];
  case 2: e = rndn(255); m = rnd() & 0x7fffff; break;
  case 3: e = rndn(6); m = rnd() & 0x7fffff; break;
  case 4: e = 127 + rndn(70) - 5; m = rnd() & 0x7fffff; break;
  case 5: e = 127 + rndn(64) - 2; m = (rnd() & 0x7fffff) & ~((1u << rndn(24)) - 1); break;
  case 6: e = 248 + rndn(7); m = rnd() & 0x7fffff; break;
  default: e = rndn(255); m = (1u << rndn(23)) | (1u << rndn(23)); break;
  }
  return sign | (e << 23) | m;
}
static uint64_t rand_s(void) {
  if (rndn(64) == 0) return poolS[rndn(nS)]; /* may be unboxed */
  return BOX | rand_s32();
}
static uint64_t rand_f(int dbl) { return dbl ? rand_d() : rand_s(); }
static uint64_t rand_i(void) {
  switch (rndn(4)) {
  case 0: return rnd();
  case 1: return poolI[rndn(nI)];
  case 2: return rnd() >> rndn(64);
  default: return (uint64_t)((int64_t)rnd() >> rndn(64));
  }
}
/* b close to a in magnitude (exercises cancellation and alignment) */
static uint64_t near_f(uint64_t a, int dbl) {
  if (dbl) {
    uint64_t b = a + (int64_t)(rndn(2 * 64) - 64) * (rndn(2) ? 1 : (int64_t)rndn(1ull << 30));
    if (rndn(2)) b ^= 1ull << 63;
    return b;
  }
  uint32_t b = (uint32_t)a + (int32_t)(rndn(2 * 64) - 64) * (rndn(2) ? 1 : (int32_t)rndn(1u << 10));
  if (rndn(2)) b ^= 0x80000000u;
  return BOX | b;
}

/* ---- instruction encoding ---- */
enum { RD = 10, RS1 = 11, RS2 = 12, RS3 = 13 };
static uint32_t rtype(uint32_t f5, uint32_t fmt, uint32_t rs2, uint32_t rm) {
  return (f5 << 27) | (fmt << 25) | (rs2 << 20) | (RS1 << 15) | (rm << 12) | (RD << 7) | 0x53;
}
static uint32_t r4type(uint32_t op, uint32_t fmt, uint32_t rm) {
  return (RS3 << 27) | (fmt << 25) | (RS2 << 20) | (RS1 << 15) | (rm << 12) | (RD << 7) | op;
}

static long ncases;
static void run_case(const char *name, uint64_t a, uint64_t b, uint64_t c, uint64_t frm) {
  volatile uint64_t io[7] = {a, b, c, frm, 0, 0, 0};
  uint32_t insn = *slot;
  ncases++;
  if (sigsetjmp(jb, 1)) {
    printf("%s %08x %016llx %016llx %016llx %llx -> ILL\n", name, insn, (unsigned long long)a,
           (unsigned long long)b, (unsigned long long)c, (unsigned long long)frm);
    return;
  }
  ((void (*)(volatile uint64_t *))code)(io);
  printf("%s %08x %016llx %016llx %016llx %llx -> %016llx %016llx %llx\n", name, insn,
         (unsigned long long)a, (unsigned long long)b, (unsigned long long)c,
         (unsigned long long)frm, (unsigned long long)io[4], (unsigned long long)io[5],
         (unsigned long long)io[6]);
}

/* Static rm in 0..4 uses a random (possibly invalid) frm: it must be ignored.
 * rm = 7 (dynamic) uses a valid frm. */
static const uint32_t RMS[] = {0, 1, 2, 3, 4, 7};
static uint64_t frm_for(uint32_t rm) { return rm == 7 ? rndn(5) : rndn(8); }

int main(int argc, char **argv) {
  int scale = argc > 1 ? atoi(argv[1]) : 1;
  code_len = (size_t)(fp_tmpl_end - fp_tmpl_start);
  code = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (code == MAP_FAILED) { perror("mmap"); return 1; }
  memcpy(code, fp_tmpl_start, code_len);
  slot = (uint32_t *)(code + (fp_tmpl_insn - fp_tmpl_start));
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_ill;
  sigaction(SIGILL, &sa, NULL);
  init_pools();

  for (int dbl = 0; dbl <= 1; dbl++) {
    uint64_t *pool = dbl ? poolD : poolS;
    int np = dbl ? nD : nS;
    const char *sfx = dbl ? ".d" : ".s";
    char name[32];

    /* binary arithmetic: all pool pairs and random pairs, every rm */
    static const char *arith[] = {"fadd", "fsub", "fmul", "fdiv"};
    for (uint32_t f5 = 0; f5 < 4; f5++) {
      snprintf(name, sizeof name, "%s%s", arith[f5], sfx);
      for (int r = 0; r < 6; r++) {
        set_insn(rtype(f5, dbl, RS2, RMS[r]));
        for (int i = 0; i < np; i++)
          for (int j = 0; j < np; j++) run_case(name, pool[i], pool[j], 0, frm_for(RMS[r]));
        for (int k = 0; k < 1500 * scale; k++) {
          uint64_t a = rand_f(dbl), b = rndn(3) == 0 ? near_f(a, dbl) : rand_f(dbl);
          if (f5 == 3 && rndn(4) == 0) { /* exact quotients */
            if (dbl) a = d2u(u2d(b) * (double)(rndn(64) + 1));
            else a = BOX | f2u(u2f((uint32_t)b) * (float)(rndn(64) + 1));
          }
          run_case(name, a, b, 0, frm_for(RMS[r]));
        }
      }
    }
    /* square root */
    snprintf(name, sizeof name, "fsqrt%s", sfx);
    for (int r = 0; r < 6; r++) {
      set_insn(rtype(0x0b, dbl, 0, RMS[r]));
      for (int i = 0; i < np; i++) run_case(name, pool[i], 0, 0, frm_for(RMS[r]));
      for (int k = 0; k < 2000 * scale; k++) {
        uint64_t a = rand_f(dbl);
        if (rndn(4) == 0) { /* perfect squares */
          if (dbl) { double x = (double)(rnd() >> 37) * u2d(0x3ff0000000000000ull + ((rndn(200) - 100) << 52)); a = d2u(x * x); }
          else { float x = (float)(rnd() >> 52); a = BOX | f2u(x * x); }
        }
        run_case(name, a, 0, 0, frm_for(RMS[r]));
      }
    }
    /* fused multiply-add family */
    static const char *fma[] = {"fmadd", "fmsub", "fnmsub", "fnmadd"};
    static const uint32_t fmaop[] = {0x43, 0x47, 0x4b, 0x4f};
    for (int o = 0; o < 4; o++) {
      snprintf(name, sizeof name, "%s%s", fma[o], sfx);
      for (int r = 0; r < 6; r++) {
        set_insn(r4type(fmaop[o], dbl, RMS[r]));
        for (int k = 0; k < 4000 * scale; k++) {
          uint64_t a, b, c;
          switch (rndn(4)) {
          case 0: a = pool[rndn(np)]; b = pool[rndn(np)]; c = pool[rndn(np)]; break;
          case 1: /* addend cancels the product (nearly) */
            a = rand_f(dbl); b = rand_f(dbl);
            if (dbl) c = near_f(d2u(-(u2d(a) * u2d(b))), 1);
            else c = near_f(BOX | f2u(-(u2f((uint32_t)a) * u2f((uint32_t)b))), 0);
            if (o == 1 || o == 3) c ^= dbl ? 1ull << 63 : 0x80000000ull;
            break;
          case 2: /* addend of similar magnitude */
            a = rand_f(dbl); b = rand_f(dbl);
            c = dbl ? d2u(u2d(a) * u2d(b) * u2d(0x3ff0000000000000ull + ((rndn(120) - 60) << 52)))
                    : BOX | f2u(u2f((uint32_t)a) * u2f((uint32_t)b) * (float)(1ull << rndn(40)) / (float)(1ull << 20));
            if (rndn(2)) c ^= dbl ? 1ull << 63 : 0x80000000ull;
            break;
          default: a = rand_f(dbl); b = rand_f(dbl); c = rand_f(dbl); break;
          }
          run_case(name, a, b, c, frm_for(RMS[r]));
        }
      }
    }
    /* sign injection, min/max, compares, classify, moves: no rm */
    static const char *nr[] = {"fsgnj", "fsgnjn", "fsgnjx", "fmin", "fmax", "fle", "flt", "feq"};
    static const uint32_t nrf5[] = {4, 4, 4, 5, 5, 0x14, 0x14, 0x14};
    static const uint32_t nrrm[] = {0, 1, 2, 0, 1, 0, 1, 2};
    for (int o = 0; o < 8; o++) {
      snprintf(name, sizeof name, "%s%s", nr[o], sfx);
      set_insn(rtype(nrf5[o], dbl, RS2, nrrm[o]));
      for (int i = 0; i < np; i++)
        for (int j = 0; j < np; j++) run_case(name, pool[i], pool[j], 0, rndn(8));
      for (int k = 0; k < 1000 * scale; k++) {
        uint64_t a = rand_f(dbl), b = rndn(3) == 0 ? near_f(a, dbl) : rand_f(dbl);
        if (rndn(8) == 0) b = a;
        run_case(name, a, b, 0, rndn(8));
      }
    }
    snprintf(name, sizeof name, "fclass%s", sfx);
    set_insn(rtype(0x1c, dbl, 0, 1));
    for (int i = 0; i < np; i++) run_case(name, pool[i], 0, 0, 0);
    for (int k = 0; k < 300 * scale; k++) run_case(name, rand_f(dbl), 0, 0, 0);
    snprintf(name, sizeof name, "fmv.x%s", sfx);
    set_insn(rtype(0x1c, dbl, 0, 0));
    for (int k = 0; k < 300 * scale; k++) run_case(name, rndn(2) ? rnd() : rand_f(dbl), 0, 0, 0);
    snprintf(name, sizeof name, "fmv%s.x", sfx);
    set_insn(rtype(0x1e, dbl, 0, 0));
    for (int k = 0; k < 300 * scale; k++) run_case(name, rand_i(), 0, 0, 0);

    /* float -> integer */
    static const char *toi[] = {"fcvt.w", "fcvt.wu", "fcvt.l", "fcvt.lu"};
    for (uint32_t t = 0; t < 4; t++) {
      snprintf(name, sizeof name, "%s%s", toi[t], sfx);
      for (int r = 0; r < 6; r++) {
        set_insn(rtype(0x18, dbl, t, RMS[r]));
        for (int i = 0; i < np; i++) run_case(name, pool[i], 0, 0, frm_for(RMS[r]));
        for (int k = 0; k < 1000 * scale; k++) {
          uint64_t a = rand_f(dbl);
          if (rndn(3) == 0) { /* halfway and near-halfway values around integers */
            int64_t n = (int64_t)rand_i() >> rndn(64);
            if (dbl) a = d2u((double)n + 0.5 * (double)(rndn(5) - 2));
            else a = BOX | f2u((float)n + 0.5f * (float)(rndn(5) - 2));
          }
          run_case(name, a, 0, 0, frm_for(RMS[r]));
        }
      }
    }
    /* integer -> float */
    static const char *fromi[] = {"w", "wu", "l", "lu"};
    for (uint32_t t = 0; t < 4; t++) {
      snprintf(name, sizeof name, "fcvt%s.%s", sfx, fromi[t]);
      for (int r = 0; r < 6; r++) {
        set_insn(rtype(0x1a, dbl, t, RMS[r]));
        for (int i = 0; i < nI; i++) run_case(name, poolI[i], 0, 0, frm_for(RMS[r]));
        for (int k = 0; k < 500 * scale; k++) run_case(name, rand_i(), 0, 0, frm_for(RMS[r]));
      }
    }
    /* precision conversion: fcvt.s.d (dbl=0 pass) / fcvt.d.s (dbl=1 pass) */
    snprintf(name, sizeof name, dbl ? "fcvt.d.s" : "fcvt.s.d");
    for (int r = 0; r < 6; r++) {
      set_insn(rtype(0x08, dbl, dbl ? 0 : 1, RMS[r]));
      uint64_t *src = dbl ? poolS : poolD;
      int ns = dbl ? nS : nD;
      for (int i = 0; i < ns; i++) run_case(name, src[i], 0, 0, frm_for(RMS[r]));
      for (int k = 0; k < 1500 * scale; k++) {
        uint64_t a = rand_f(!dbl);
        if (!dbl && rndn(2)) { /* binary64 values in and around the binary32 range */
          a = (rnd() & 0x800fffffffffffffull) | ((uint64_t)(1023 - 160 + rndn(300)) << 52);
          if (rndn(2)) a &= ~((1ull << (rndn(40) + 1)) - 1);
        }
        run_case(name, a, 0, 0, frm_for(RMS[r]));
      }
    }
  }

  /* encodings that must be illegal: reserved static rm, and dynamic rm with invalid frm */
  {
    uint64_t one = 0x3ff0000000000000ull;
    for (uint32_t rm = 5; rm <= 6; rm++) {
      set_insn(rtype(0, 1, RS2, rm)); run_case("ill.fadd.d", one, one, 0, 0);
      set_insn(rtype(2, 0, RS2, rm)); run_case("ill.fmul.s", BOX | 0x3f800000, BOX | 0x3f800000, 0, 0);
      set_insn(r4type(0x43, 1, rm)); run_case("ill.fmadd.d", one, one, one, 0);
      set_insn(rtype(0x18, 1, 0, rm)); run_case("ill.fcvt.w.d", one, 0, 0, 0);
      set_insn(rtype(0x1a, 0, 2, rm)); run_case("ill.fcvt.s.l", 5, 0, 0, 0);
      set_insn(rtype(0x08, 1, 0, rm)); run_case("ill.fcvt.d.s", BOX | 0x3f800000, 0, 0, 0);
      set_insn(rtype(0x0b, 1, 0, rm)); run_case("ill.fsqrt.d", one, 0, 0, 0);
    }
    for (uint64_t frm = 5; frm <= 7; frm++) {
      set_insn(rtype(0, 1, RS2, 7)); run_case("ill.fadd.d.dyn", one, one, 0, frm);
      set_insn(r4type(0x4f, 0, 7)); run_case("ill.fnmadd.s.dyn", BOX | 0x3f800000, BOX | 0x3f800000, BOX | 0x3f800000, frm);
      set_insn(rtype(0x1a, 1, 3, 7)); run_case("ill.fcvt.d.lu.dyn", 7, 0, 0, frm);
    }
    set_insn(rtype(0x04, 1, RS2, 3)); run_case("ill.fsgnj.rm3", one, one, 0, 0);
    set_insn(rtype(0x1e, 1, 0, 1)); run_case("ill.fmv.d.x.rm1", one, 0, 0, 0);
    set_insn(rtype(0x1c, 1, 0, 2)); run_case("ill.fmv.x.d.rm2", one, 0, 0, 0);
    set_insn(rtype(0x18, 1, 4, 0)); run_case("ill.fcvt.d.rs2_4", one, 0, 0, 0);
    set_insn(rtype(0x1a, 1, 4, 0)); run_case("ill.fcvt.d.x.rs2_4", one, 0, 0, 0);
    set_insn(rtype(0x08, 1, 1, 0)); run_case("ill.fcvt.d.d", one, 0, 0, 0);
    set_insn(rtype(0x08, 0, 0, 0)); run_case("ill.fcvt.s.s", one, 0, 0, 0);
    set_insn(rtype(0x0b, 1, 1, 0)); run_case("ill.fsqrt.rs2_1", one, 0, 0, 0);
    set_insn(rtype(0x06, 1, RS2, 0)); run_case("ill.f5_06", one, one, 0, 0);
    set_insn(rtype(0x1f, 1, 0, 0)); run_case("ill.f5_1f", one, 0, 0, 0);
  }
  fprintf(stderr, "fp-oracle: %ld cases\n", ncases);
  return 0;
}
