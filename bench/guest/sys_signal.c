/* Signal delivery: raise SIGUSR1 to itself; the handler runs before raise returns. */
#include "syspath.h"
#include <signal.h>

static volatile sig_atomic_t handled;

static void on_usr1(int sig)
{
	(void)sig;
	handled++;
}

int main(int argc, char **argv)
{
	uint64_t n = sys_count(argc, argv, 50000);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		sys_die("sigaction");
	pid_t self = getpid();
	double t0 = bench_now();
	for (uint64_t i = 0; i < n; i++)
		if (kill(self, SIGUSR1) != 0)
			sys_die("kill");
	double t = bench_now() - t0;
	if ((uint64_t)handled != n) {
		fprintf(stderr, "sys_signal: %llu signals handled of %llu\n", (unsigned long long)handled, (unsigned long long)n);
		return 1;
	}
	bench_report_u64("sys_signal", t, bench_mix(BENCH_MIX_INIT, n));
	return 0;
}
