/* A shell loop spawning processes: /bin/sh runs this program (in its child
 * role, which exits at once) N times as an external command. */
#include "syspath.h"
#include <sys/wait.h>

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "child") == 0)
		return 0;
	uint64_t n = sys_count(argc, argv, 200);
	char script[256];
	snprintf(script, sizeof script,
		 "i=0; while [ $i -lt %llu ]; do \"$0\" child || exit 9; i=$((i+1)); done; exit 7",
		 (unsigned long long)n);
	double t0 = bench_now();
	pid_t pid = fork();
	if (pid < 0)
		sys_die("fork");
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", script, argv[0], (char *)NULL);
		_exit(127);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 7) {
		fprintf(stderr, "sys_shell: the loop failed (status %d)\n", st);
		return 1;
	}
	double t = bench_now() - t0;
	bench_report_u64("sys_shell", t, bench_mix(BENCH_MIX_INIT, n));
	return 0;
}
