/* smp_torture: atomics, LR/SC, fences and cross-modifying code on every hart
   of a Linux guest (test/smp.test.ts). One thread per CPU the process may use,
   each pinned to its CPU. Freestanding (raw Linux system calls, threads made
   with clone), built by test/guest/build.sh.

   Prints "name value" lines and ends with "smp_torture: PASS" or
   "smp_torture: FAIL <what>". Litmus outcomes are printed as counts per
   outcome; the program itself fails on any outcome RVWMO forbids for the
   fenced shapes it runs. */

#define SYS_write 64
#define SYS_exit 93
#define SYS_exit_group 94
#define SYS_sched_yield 124
#define SYS_sched_setaffinity 122
#define SYS_sched_getaffinity 123
#define SYS_clone 220
#define SYS_mmap 222
#define SYS_riscv_flush_icache 259

#define MAX_THREADS 8
#define STACK_BYTES 65536
#define ITERS 20000
#define RING_SLOTS 64
#define RING_MSGS 20000
#define LITMUS_RUNS 400

typedef unsigned long u64;

static long sys6(long n, long a, long b, long c, long d, long e, long f) {
  register long a0 __asm__("a0") = a;
  register long a1 __asm__("a1") = b;
  register long a2 __asm__("a2") = c;
  register long a3 __asm__("a3") = d;
  register long a4 __asm__("a4") = e;
  register long a5 __asm__("a5") = f;
  register long a7 __asm__("a7") = n;
  __asm__ volatile("ecall" : "+r"(a0) : "r"(a1), "r"(a2), "r"(a3), "r"(a4), "r"(a5), "r"(a7) : "memory");
  return a0;
}
#define sys3(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)

/* ---- output ---- */

static void out(const char *s) {
  long n = 0;
  while (s[n]) n++;
  sys3(SYS_write, 1, s, n);
}

static void out_num(const char *label, u64 v) {
  char buf[96];
  int i = 0;
  while (label[i] && i < 64) { buf[i] = label[i]; i++; }
  buf[i++] = ' ';
  char tmp[24];
  int k = 0;
  do { tmp[k++] = (char)('0' + v % 10); v /= 10; } while (v);
  while (k) buf[i++] = tmp[--k];
  buf[i++] = '\n';
  sys3(SYS_write, 1, buf, i);
}

static int failed;
static void fail(const char *what) {
  out("smp_torture: FAIL ");
  out(what);
  out("\n");
  failed = 1;
}

/* ---- atomics ---- */

static inline long amoadd(volatile long *p, long v) {
  long old;
  __asm__ volatile("amoadd.d.aqrl %0, %2, (%1)" : "=r"(old) : "r"(p), "r"(v) : "memory");
  return old;
}

static inline void lrsc_add(volatile long *p, long v) {
  long tmp, fail;
  __asm__ volatile(
      "1: lr.d %0, (%2)\n"
      "   add %0, %0, %3\n"
      "   sc.d %1, %0, (%2)\n"
      "   bnez %1, 1b\n"
      : "=&r"(tmp), "=&r"(fail) : "r"(p), "r"(v) : "memory");
}

static inline void lock(volatile int *l) {
  int tmp, busy;
  __asm__ volatile(
      "1: lr.w.aq %0, (%2)\n"
      "   bnez %0, 1b\n"
      "   li %1, 1\n"
      "   sc.w %1, %1, (%2)\n"
      "   bnez %1, 1b\n"
      : "=&r"(tmp), "=&r"(busy) : "r"(l) : "memory");
}

static inline void unlock(volatile int *l) {
  __asm__ volatile("fence rw, w\n sw zero, (%0)" : : "r"(l) : "memory");
}

#define FENCE(x) __asm__ volatile("fence " x ::: "memory")
/* What Linux's cpu_relax() does in spin loops: the PAUSE hint (Zihintpause), as its encoding. */
#define RELAX() __asm__ volatile(".4byte 0x0100000f" ::: "memory")

/* ---- threads ---- */

static int nthreads;
static unsigned char stacks[MAX_THREADS][STACK_BYTES] __attribute__((aligned(16)));
static volatile long alive;

/* clone(CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM) on a new stack; the child calls fn(arg), then exits. */
static long spawn(void (*fn)(long), long arg, void *stack_top) {
  register long a0 __asm__("a0") = 0x50f00; /* VM FS FILES SIGHAND THREAD SYSVSEM */
  register long a1 __asm__("a1") = (long)stack_top;
  register long a2 __asm__("a2") = 0;
  register long a3 __asm__("a3") = 0;
  register long a4 __asm__("a4") = 0;
  register long a7 __asm__("a7") = SYS_clone;
  register long s1 __asm__("s1") = (long)fn;
  register long s2 __asm__("s2") = arg;
  __asm__ volatile(
      "ecall\n"
      "bnez a0, 1f\n"
      "mv a0, s2\n"
      "jalr s1\n"
      "li a0, 0\n"
      "li a7, 93\n"
      "ecall\n"
      "1:\n"
      : "+r"(a0) : "r"(a1), "r"(a2), "r"(a3), "r"(a4), "r"(a7), "r"(s1), "r"(s2) : "memory", "ra");
  return a0;
}

static void pin(int cpu) {
  u64 mask = 1ul << cpu;
  sys3(SYS_sched_setaffinity, 0, sizeof mask, &mask);
}

/* Sense-reversing barrier for all threads. */
static volatile long bar_count, bar_sense;
static void barrier(long *sense) {
  *sense ^= 1;
  if (amoadd(&bar_count, 1) == nthreads - 1) {
    bar_count = 0;
    FENCE("rw, rw");
    bar_sense = *sense;
  } else {
    while (bar_sense != *sense) RELAX();
  }
  FENCE("rw, rw");
}

/* Two-party barrier for the litmus shapes (threads 0 and 1). */
static volatile long pair_count, pair_sense;
static void pair_barrier(long *sense) {
  *sense ^= 1;
  if (amoadd(&pair_count, 1) == 1) {
    pair_count = 0;
    FENCE("rw, rw");
    pair_sense = *sense;
  } else {
    while (pair_sense != *sense) RELAX();
  }
  FENCE("rw, rw");
}

/* ---- shared data ---- */

static volatile long c_amo, c_lrsc, c_locked;
static volatile int the_lock;
static volatile u64 ring[RING_SLOTS];
static volatile long ring_head, ring_tail, ring_errors, ring_sum;

static volatile long lx, ly;
static volatile long r1s[LITMUS_RUNS], r2s[LITMUS_RUNS], fx[LITMUS_RUNS], fy[LITMUS_RUNS];

static unsigned int *xcode;
static volatile long xmc_flag, xmc_calls, xmc_result, xmc_ready;

static void ring_phase(int id) {
  if (id == 0) {
    for (long i = 1; i <= RING_MSGS; i++) {
      while (ring_head - ring_tail >= RING_SLOTS) RELAX();
      FENCE("rw, w"); /* the consumer is done with the slot before it is reused */
      ring[ring_head % RING_SLOTS] = (u64)i * 2654435761u;
      FENCE("w, w"); /* message before the index that publishes it */
      ring_head = ring_head + 1;
    }
  } else if (id == 1) {
    for (long i = 1; i <= RING_MSGS; i++) {
      while (ring_head == ring_tail) RELAX();
      FENCE("r, r"); /* index before the message */
      u64 v = ring[ring_tail % RING_SLOTS];
      if (v != (u64)i * 2654435761u) ring_errors++;
      ring_sum += (long)(v / 2654435761u);
      FENCE("r, w");
      ring_tail = ring_tail + 1;
    }
  }
}

/* The four litmus shapes, fenced: each run resets x, y and records what the threads saw. */
static void litmus(int id, int shape, long *psense) {
  for (int run = 0; run < LITMUS_RUNS; run++) {
    if (id == 0) { lx = 0; ly = 0; }
    pair_barrier(psense);
    /* A different delay each run moves one thread against the other. */
    for (volatile int d = 0; d < ((run * 7 + id * 13) & 31); d++) {}
    long a = 0;
    switch (shape) {
      case 0: /* MP */
        if (id == 0) { lx = 1; FENCE("w, w"); ly = 1; }
        else { a = ly; FENCE("r, r"); r2s[run] = lx; r1s[run] = a; }
        break;
      case 1: /* SB */
        if (id == 0) { lx = 1; FENCE("rw, rw"); r1s[run] = ly; }
        else { ly = 1; FENCE("rw, rw"); r2s[run] = lx; }
        break;
      case 2: /* LB */
        if (id == 0) { a = lx; FENCE("r, w"); ly = 1; r1s[run] = a; }
        else { a = ly; FENCE("r, w"); lx = 1; r2s[run] = a; }
        break;
      case 3: /* 2+2W */
        if (id == 0) { lx = 1; FENCE("w, w"); ly = 2; }
        else { ly = 1; FENCE("w, w"); lx = 2; }
        break;
    }
    pair_barrier(psense);
    if (id == 0) { fx[run] = lx; fy[run] = ly; }
  }
}

static void litmus_report(int shape) {
  static const char *names[] = {"MP", "SB", "LB", "2+2W"};
  long seen[4] = {0, 0, 0, 0};
  for (int run = 0; run < LITMUS_RUNS; run++) {
    long p, q;
    if (shape == 3) { p = fx[run] == 1; q = fy[run] == 1; }
    else { p = r1s[run]; q = r2s[run]; }
    seen[(p & 1) * 2 + (q & 1)]++;
  }
  char label[32];
  for (int o = 0; o < 4; o++) {
    int i = 0;
    for (const char *s = "litmus "; *s; s++) label[i++] = *s;
    for (const char *s = names[shape]; *s; s++) label[i++] = *s;
    label[i++] = ' ';
    label[i++] = (char)('0' + (o >> 1));
    label[i++] = (char)('0' + (o & 1));
    label[i] = 0;
    out_num(label, (u64)seen[o]);
  }
  /* Forbidden with these fences (RVWMO): MP r1=1 r2=0, SB r1=0 r2=0, LB r1=1 r2=1, 2+2W x=1 y=1. */
  int bad = shape == 0 ? 2 : shape == 1 ? 0 : 3;
  if (seen[bad] != 0) fail(names[shape]);
}

static void xmc_phase(int id) {
  typedef long (*fn_t)(void);
  if (id == 1) {
    fn_t f = (fn_t)(void *)xcode;
    long calls = 0;
    while (!xmc_flag) {
      long v = f(); /* the old code, or already the new one (both are fine before the flag) */
      if (v != 1 && v != 2) { xmc_result = -1; return; }
      calls++;
      if (calls == 5000) xmc_ready = 1;
    }
    FENCE("r, r");
    __asm__ volatile("fence.i" ::: "memory");
    xmc_result = f();
    xmc_calls = calls;
  } else if (id == 0) {
    while (!xmc_ready) RELAX();
    /* li a0, 2 instead of li a0, 1 */
    xcode[0] = (2u << 20) | (10u << 7) | 0x13u;
    __asm__ volatile("fence.i" ::: "memory");
    sys3(SYS_riscv_flush_icache, xcode, xcode + 2, 0); /* every hart (SBI remote fence.i) */
    FENCE("w, w");
    xmc_flag = 1;
  }
}

static void worker(long id) {
  long sense = 0, psense = 0;
  pin((int)id);
  barrier(&sense);
  for (int i = 0; i < ITERS; i++) amoadd(&c_amo, 1);
  for (int i = 0; i < ITERS; i++) lrsc_add(&c_lrsc, 1);
  for (int i = 0; i < ITERS; i++) {
    lock(&the_lock);
    c_locked = c_locked + 1; /* plain load and store, under the lock */
    unlock(&the_lock);
  }
  barrier(&sense);
  if (nthreads >= 2) ring_phase((int)id);
  barrier(&sense);
  if (nthreads >= 2 && id < 2) {
    for (int s = 0; s < 4; s++) {
      litmus((int)id, s, &psense);
      if (id == 0) litmus_report(s);
    }
  }
  barrier(&sense);
  if (nthreads >= 2 && id < 2) xmc_phase((int)id);
  barrier(&sense);
  if (id != 0) amoadd(&alive, -1);
}

void test_main(void) {
  u64 mask = 0;
  sys3(SYS_sched_getaffinity, 0, sizeof mask, &mask);
  for (int c = 0; c < 64; c++) if (mask & (1ul << c)) nthreads++;
  if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
  out_num("threads", (u64)nthreads);
  long code = sys6(SYS_mmap, 0, 4096, 7 /* RWX */, 0x22 /* PRIVATE|ANONYMOUS */, -1, 0);
  if (code < 0 && code > -4096) { fail("mmap"); sys3(SYS_exit_group, 1, 0, 0); }
  xcode = (unsigned int *)code;
  xcode[0] = (1u << 20) | (10u << 7) | 0x13u; /* li a0, 1 */
  xcode[1] = 0x00008067u; /* ret */
  __asm__ volatile("fence.i" ::: "memory");
  alive = nthreads - 1;
  for (long t = 1; t < nthreads; t++) {
    if (spawn(worker, t, stacks[t] + STACK_BYTES) < 0) { fail("clone"); sys3(SYS_exit_group, 1, 0, 0); }
  }
  worker(0);
  while (alive != 0) sys3(SYS_sched_yield, 0, 0, 0);
  FENCE("rw, rw");
  long want = (long)nthreads * ITERS;
  out_num("amoadd", (u64)c_amo);
  out_num("lrsc", (u64)c_lrsc);
  out_num("spinlock", (u64)c_locked);
  out_num("expected", (u64)want);
  if (c_amo != want) fail("amoadd total");
  if (c_lrsc != want) fail("lr/sc total");
  if (c_locked != want) fail("spinlock total");
  if (nthreads >= 2) {
    out_num("ring_errors", (u64)ring_errors);
    out_num("ring_sum", (u64)ring_sum);
    if (ring_errors != 0 || ring_sum != (long)RING_MSGS * (RING_MSGS + 1) / 2) fail("message ring");
    out_num("xmc_calls_before", (u64)xmc_calls);
    out_num("xmc_result", (u64)xmc_result);
    if (xmc_result != 2) fail("cross-modified code");
  }
  if (!failed) out("smp_torture: PASS\n");
  sys3(SYS_exit_group, failed, 0, 0);
  for (;;) {}
}
