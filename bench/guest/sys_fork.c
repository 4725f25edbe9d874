/* fork() a child that exits at once with a status the parent checks. */
#include "syspath.h"
#include <sys/wait.h>

int main(int argc, char **argv)
{
	uint64_t n = sys_count(argc, argv, 2000);
	uint64_t sum = 0;
	double t0 = bench_now();
	for (uint64_t i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0)
			sys_die("fork");
		if (pid == 0)
			_exit((int)(i & 0x7f));
		int st;
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
			sys_die("waitpid");
		sum += (uint64_t)WEXITSTATUS(st);
	}
	double t = bench_now() - t0;
	bench_report_u64("sys_fork", t, bench_mix(BENCH_MIX_INIT, sum));
	return 0;
}
