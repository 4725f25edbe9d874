/* Null system call: getppid() through syscall(), so libc cannot cache it. */
#include "syspath.h"

int main(int argc, char **argv)
{
	uint64_t n = sys_count(argc, argv, 400000);
	uint64_t sum = BENCH_MIX_INIT;
	long ppid = syscall(SYS_getppid);
	double t0 = bench_now();
	for (uint64_t i = 0; i < n; i++)
		if (syscall(SYS_getppid) != ppid)
			sys_die("getppid changed");
	double t = bench_now() - t0;
	sum = bench_mix(sum, n);
	bench_report_u64("sys_null", t, sum);
	return 0;
}
