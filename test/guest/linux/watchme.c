/* watchme: a user program for the debugger test (test/gdb.test.ts). It adds
   one to the global `watched` three times, then prints the result and exits.
   Static, linked at a fixed address, so the test knows the global's virtual
   address from the ELF. Freestanding (raw Linux syscalls), built by
   test/guest/build.sh. */

volatile long watched;

static long syscall3(long n, long a, long b, long c) {
  register long a0 __asm__("a0") = a;
  register long a1 __asm__("a1") = b;
  register long a2 __asm__("a2") = c;
  register long a7 __asm__("a7") = n;
  __asm__ volatile("ecall" : "+r"(a0) : "r"(a1), "r"(a2), "r"(a7) : "memory");
  return a0;
}

void test_main(void) {
  for (int i = 0; i < 3; i++) watched = watched + 1;
  char msg[] = "watchme: watched=0\n";
  msg[sizeof msg - 3] = (char)('0' + watched);
  syscall3(64, 1, (long)msg, sizeof msg - 1);
  syscall3(93, 0, 0, 0);
  for (;;) {}
}
