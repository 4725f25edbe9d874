/* One byte written to a pipe and read back by the same process. */
#include "syspath.h"

int main(int argc, char **argv)
{
	uint64_t n = sys_count(argc, argv, 100000);
	int fd[2];
	if (pipe(fd) != 0)
		sys_die("pipe");
	uint64_t sum = BENCH_MIX_INIT;
	double t0 = bench_now();
	for (uint64_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)i, d;
		if (write(fd[1], &c, 1) != 1)
			sys_die("write");
		if (read(fd[0], &d, 1) != 1)
			sys_die("read");
		sum += d;
	}
	double t = bench_now() - t0;
	bench_report_u64("sys_pipe", t, bench_mix(BENCH_MIX_INIT, sum));
	return 0;
}
