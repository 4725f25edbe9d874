/* mmap/munmap churn: map 64 KiB, touch its first and last page, unmap. */
#include "syspath.h"
#include <sys/mman.h>

#define SIZE (64u << 10)

int main(int argc, char **argv)
{
	uint64_t n = sys_count(argc, argv, 20000);
	uint64_t sum = 0;
	double t0 = bench_now();
	for (uint64_t i = 0; i < n; i++) {
		unsigned char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			sys_die("mmap");
		p[0] = (unsigned char)i;
		p[SIZE - 1] = (unsigned char)(i >> 8);
		sum += p[0] + p[SIZE - 1];
		if (munmap(p, SIZE) != 0)
			sys_die("munmap");
	}
	double t = bench_now() - t0;
	bench_report_u64("sys_mmap", t, bench_mix(BENCH_MIX_INIT, sum));
	return 0;
}
