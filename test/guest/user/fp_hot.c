/* Hot floating-point loops, so the translator compiles them: loads and stores of
   f registers (flw/fld/fsw/fsd), fused multiply-adds, arithmetic, conversions,
   compares and moves between register files, with the accrued fflags printed.
   Every loop runs long enough to cross many run slices; the output must match
   QEMU's byte for byte with the translator on and off. */

extern void rt_puts(const char *s);
extern void rt_print_lh(const char *label, unsigned long value);

static unsigned long bits(double d) {
  union { double d; unsigned long u; } x = { .d = d };
  return x.u;
}
static unsigned long fbits(float f) {
  union { float f; unsigned int u; } x = { .f = f };
  return x.u;
}
static unsigned long read_fflags(void) {
  unsigned long v;
  __asm__ volatile("frflags %0" : "=r"(v));
  return v;
}
static void clear_fflags(void) {
  __asm__ volatile("fsflags zero");
}
static __attribute__((noreturn)) void sys_exit(long code) {
  register long a0 __asm__("a0") = code;
  register long a7 __asm__("a7") = 93;
  __asm__ volatile("ecall" : : "r"(a0), "r"(a7));
  for (;;) {}
}

#define N 48
static double A[N][N], B[N][N], C[N][N];
static float S[4096];

void test_main(void) {
  rt_puts("== fp_hot\n");

  /* double matmul with fmadd (gcc contracts a*b+c at -O2 for rv64gc) */
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      A[i][j] = (double)(i * N + j + 1) / 7.0;
      B[i][j] = (double)((i + 3) * (j + 5) % 97) / 13.0 - 2.5;
    }
  clear_fflags();
  for (int rep = 0; rep < 6; rep++)
    for (int i = 0; i < N; i++)
      for (int j = 0; j < N; j++) {
        double s = C[i][j] * 0.5;
        for (int k = 0; k < N; k++) s += A[i][k] * B[k][j];
        C[i][j] = s;
      }
  unsigned long h = 0;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) h = h * 31 + bits(C[i][j]);
  rt_print_lh("matmul hash", h);
  rt_print_lh("matmul c00", bits(C[0][0]));
  rt_print_lh("matmul fflags", read_fflags());

  /* single precision: sums, products, division, sqrt-free iteration, boxing through memory */
  clear_fflags();
  for (int i = 0; i < 4096; i++) S[i] = (float)i * 0.37f - 100.0f;
  float acc = 0.0f, prod = 1.0f;
  for (int rep = 0; rep < 60; rep++)
    for (int i = 0; i < 4096; i++) {
      float x = S[i];
      acc += x / 3.0f;
      prod = prod * 0.999f + x * 1e-6f;
      S[i] = x + acc * 1e-7f;
    }
  rt_print_lh("single acc", fbits(acc));
  rt_print_lh("single prod", fbits(prod));
  rt_print_lh("single s[4095]", fbits(S[4095]));
  rt_print_lh("single fflags", read_fflags());

  /* conversions, compares and moves between register files in a hot loop */
  clear_fflags();
  long isum = 0;
  unsigned long cmp = 0;
  double d = -12345.678;
  for (int i = 0; i < 200000; i++) {
    d = d * 1.0000001 + 0.37;
    long v = (long)d;                 /* fcvt.l.d (rtz) */
    isum += v;
    cmp = cmp * 3 + (d < 100.0) + (d == (double)v) * 2; /* flt.d, fcvt.d.l, feq.d */
    if ((i & 1023) == 0) d = -d;      /* sign changes */
  }
  rt_print_lh("cvt isum", (unsigned long)isum);
  rt_print_lh("cvt cmp", cmp);
  rt_print_lh("cvt d", bits(d));
  rt_print_lh("cvt fflags", read_fflags());

  rt_puts("== done\n");
  sys_exit(0);
}
