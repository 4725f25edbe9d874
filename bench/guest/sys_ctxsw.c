/* Pipe ping-pong between two processes: each round trip is two context switches. */
#include "syspath.h"
#include <sys/wait.h>

int main(int argc, char **argv)
{
	uint64_t n = sys_count(argc, argv, 20000);
	int ab[2], ba[2];
	if (pipe(ab) != 0 || pipe(ba) != 0)
		sys_die("pipe");
	pid_t pid = fork();
	if (pid < 0)
		sys_die("fork");
	if (pid == 0) {
		unsigned char c;
		for (uint64_t i = 0; i < n; i++) {
			if (read(ab[0], &c, 1) != 1)
				_exit(1);
			c++;
			if (write(ba[1], &c, 1) != 1)
				_exit(1);
		}
		_exit(0);
	}
	uint64_t sum = 0;
	double t0 = bench_now();
	for (uint64_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)i;
		if (write(ab[1], &c, 1) != 1)
			sys_die("write");
		if (read(ba[0], &c, 1) != 1)
			sys_die("read");
		sum += c;
	}
	double t = bench_now() - t0;
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		sys_die("child");
	bench_report_u64("sys_ctxsw", t, bench_mix(BENCH_MIX_INIT, sum));
	return 0;
}
