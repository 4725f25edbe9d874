/* A userland job as a user would run it: a busybox shell script that makes a
 * data file with seq and awk, sorts it, sums it with awk, compresses it with
 * gzip and bzip2 and checks the round trips with sha256sum and md5sum, rewrites
 * it with sed, counts with grep and wc, and packs it with tar, N times. The
 * checksum folds in everything the script printed, so both emulators must
 * produce the same output byte for byte. */
#include "syspath.h"
#include <sys/wait.h>

static const char *const SCRIPT =
	"set -e\n"
	"d=$(mktemp -d)\n"
	"cd \"$d\"\n"
	"i=0\n"
	"while [ $i -lt $1 ]; do\n"
	"  seq 1 12000 | awk '{ print ($1 * 7919) % 10007, $1 }' > nums.txt\n"
	"  sort -n -k1,1 -k2,2 nums.txt > sorted.txt\n"
	"  awk '{ s += $1; t += $2 } END { print s, t }' sorted.txt\n"
	"  cut -d' ' -f1 sorted.txt | uniq -c | sort -rn | head -3\n"
	"  gzip -c sorted.txt > sorted.gz\n"
	"  gunzip -c sorted.gz | sha256sum\n"
	"  bzip2 -c sorted.txt > sorted.bz2\n"
	"  bunzip2 -c sorted.bz2 | md5sum\n"
	"  sed -e 's/1/one/g' -e 's/ /,/' sorted.txt | grep -c one\n"
	"  tar cf pack.tar nums.txt sorted.txt\n"
	"  tar tf pack.tar\n"
	"  wc -l < sorted.txt\n"
	"  rm -f nums.txt sorted.txt sorted.gz sorted.bz2 pack.tar\n"
	"  i=$((i+1))\n"
	"done\n"
	"cd /\n"
	"rmdir \"$d\"\n";

int main(int argc, char **argv)
{
	uint64_t n = sys_count(argc, argv, 6);
	char count[32];
	snprintf(count, sizeof count, "%llu", (unsigned long long)n);
	int fd[2];
	if (pipe(fd) != 0)
		sys_die("pipe");
	double t0 = bench_now();
	pid_t pid = fork();
	if (pid < 0)
		sys_die("fork");
	if (pid == 0) {
		dup2(fd[1], 1);
		close(fd[0]);
		close(fd[1]);
		execl("/bin/sh", "sh", "-c", SCRIPT, "sys_userland", count, (char *)NULL);
		_exit(127);
	}
	close(fd[1]);
	uint64_t sum = BENCH_MIX_INIT;
	unsigned char buf[4096];
	ssize_t got;
	while ((got = read(fd[0], buf, sizeof buf)) > 0) {
		for (ssize_t i = 0; i < got; i++)
			sum = bench_mix(sum, buf[i]);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "sys_userland: the script failed (status %d)\n", st);
		return 1;
	}
	double t = bench_now() - t0;
	bench_report_u64("sys_userland", t, sum);
	return 0;
}
