/* A guest that dirties memory hard, for the live-migration benchmark
 * (bench/migrate.ts): it walks a big buffer in a loop, updating one 64-bit
 * word in every 64-byte line, so every page of the buffer is written on every
 * pass. Roughly once a second it prints
 *
 *     DIRTY <pass> <checksum>
 *
 * where the checksum folds in every word it read, so a buffer that lost or
 * garbled pages across a migration shows up as a checksum no uninterrupted run
 * would print (the same binary prints the same sequence for the same passes).
 *
 * Usage: dirty [MiB] (default 64). Runs until killed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

static double now(void)
{
	struct timespec ts;
	syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	long mib = argc > 1 ? atol(argv[1]) : 64;
	if (mib < 1 || mib > 1024) {
		fprintf(stderr, "dirty: MiB must be 1..1024\n");
		return 2;
	}
	size_t words = (size_t)mib << 17; /* 8-byte words */
	uint64_t *buf = malloc(words * sizeof *buf);
	if (!buf) {
		perror("dirty: malloc");
		return 1;
	}
	memset(buf, 0, words * sizeof *buf);
	printf("DIRTY start %ld MiB\n", mib);
	fflush(stdout);
	double last = now();
	uint64_t sum = 0;
	for (uint64_t pass = 1;; pass++) {
		for (size_t i = 0; i < words; i += 8) {
			uint64_t v = buf[i] * 6364136223846793005ull + pass + i;
			buf[i] = v;
			sum = (sum ^ v) * 0x100000001b3ull;
		}
		double t = now();
		if (t - last >= 1.0) {
			last = t;
			printf("DIRTY %llu %016llx\n", (unsigned long long)pass, (unsigned long long)sum);
			fflush(stdout);
		}
	}
}
