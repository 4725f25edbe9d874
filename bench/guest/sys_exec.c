/* fork() + execve() of a small static program (this one, in its child role). */
#include "syspath.h"
#include <sys/wait.h>

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "child") == 0)
		return argc >= 3 ? atoi(argv[2]) & 0x7f : 0;
	uint64_t n = sys_count(argc, argv, 500);
	uint64_t sum = 0;
	double t0 = bench_now();
	for (uint64_t i = 0; i < n; i++) {
		char code[8];
		snprintf(code, sizeof code, "%u", (unsigned)(i & 0x7f));
		pid_t pid = fork();
		if (pid < 0)
			sys_die("fork");
		if (pid == 0) {
			char *args[] = { argv[0], "child", code, NULL };
			execv("/proc/self/exe", args);
			_exit(127);
		}
		int st;
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
			sys_die("waitpid");
		sum += (uint64_t)WEXITSTATUS(st);
	}
	double t = bench_now() - t0;
	bench_report_u64("sys_exec", t, bench_mix(BENCH_MIX_INIT, sum));
	return 0;
}
