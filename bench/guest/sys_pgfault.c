/* Page faults on fresh anonymous memory: map 32 MiB, touch each page, unmap. */
#include "syspath.h"
#include <sys/mman.h>

#define REGION (32u << 20)

int main(int argc, char **argv)
{
	uint64_t rounds = sys_count(argc, argv, 8);
	long page = sysconf(_SC_PAGESIZE);
	uint64_t sum = 0;
	double t0 = bench_now();
	for (uint64_t r = 0; r < rounds; r++) {
		unsigned char *p = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			sys_die("mmap");
		for (size_t off = 0; off < REGION; off += (size_t)page) {
			sum += p[off]; /* a fresh page reads as zero */
			p[off] = (unsigned char)(off >> 12);
		}
		sum += p[REGION - (size_t)page];
		if (munmap(p, REGION) != 0)
			sys_die("munmap");
	}
	double t = bench_now() - t0;
	bench_report_u64("sys_pgfault", t, bench_mix(BENCH_MIX_INIT, sum + rounds));
	return 0;
}
