/* Shared helpers for the tsvisor CPU-bound guest benchmarks.
 *
 * Every program does its setup first (allocating and filling its input),
 * then times only the work with clock_gettime(CLOCK_MONOTONIC), and prints
 * exactly one result line:
 *
 *     BENCH <name> <seconds> <checksum>
 *
 * The checksum depends only on the computed result, so two emulators that
 * ran the same binary must print the same checksum.
 *
 * An optional first argument scales the amount of work (a positive number,
 * default 1); the benchmark harness uses it for quick runs. */
#ifndef TSVISOR_BENCH_H
#define TSVISOR_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

/* CLOCK_MONOTONIC through the system call rather than the vDSO: the vDSO
 * reads the `time` CSR from user mode, which needs scounteren.TM set by the
 * platform; the system call keeps the timing independent of that (and costs
 * nothing measurable next to seconds of work). */
static inline double bench_now(void)
{
	struct timespec ts;
	if (syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts) != 0) {
		perror("clock_gettime");
		exit(1);
	}
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The work scale from argv[1] (default 1.0). */
static inline double bench_scale(int argc, char **argv)
{
	if (argc < 2)
		return 1.0;
	double s = strtod(argv[1], NULL);
	if (!(s > 0.0) || s > 1000.0) {
		fprintf(stderr, "usage: %s [scale > 0]\n", argv[0]);
		exit(2);
	}
	return s;
}

/* Scales a count, never below `min`. */
static inline uint64_t bench_scaled(uint64_t n, double scale, uint64_t min)
{
	double v = (double)n * scale;
	uint64_t r = (uint64_t)(v + 0.5);
	return r < min ? min : r;
}

/* splitmix64: a small, well-mixed deterministic generator for inputs. */
static inline uint64_t bench_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* FNV-1a style 64-bit folding of a value into a running checksum. */
static inline uint64_t bench_mix(uint64_t h, uint64_t v)
{
	for (int i = 0; i < 8; i++) {
		h ^= (v >> (8 * i)) & 0xff;
		h *= 0x100000001b3ULL;
	}
	return h;
}
#define BENCH_MIX_INIT 0xcbf29ce484222325ULL

static inline void bench_report(const char *name, double seconds, const char *checksum)
{
	printf("BENCH %s %.6f %s\n", name, seconds, checksum);
	fflush(stdout);
}

static inline void bench_report_u64(const char *name, double seconds, uint64_t checksum)
{
	char buf[17];
	snprintf(buf, sizeof buf, "%016llx", (unsigned long long)checksum);
	bench_report(name, seconds, buf);
}

static inline void *bench_alloc(size_t n)
{
	void *p = malloc(n);
	if (!p) {
		fprintf(stderr, "out of memory (%zu bytes)\n", n);
		exit(1);
	}
	return p;
}

#endif
