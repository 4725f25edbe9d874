/* Shared helpers for the system-path benchmarks (bench/syspath.ts): each
 * program repeats one kernel operation a fixed number of times, times the
 * loop, and prints `BENCH name seconds checksum` like the CPU programs. The
 * checksum folds in what the operations returned, so both emulators must
 * agree on it. */
#ifndef TSVISOR_SYSPATH_H
#define TSVISOR_SYSPATH_H

#include "bench.h"
#include <errno.h>
#include <string.h>

static inline void sys_die(const char *what)
{
	fprintf(stderr, "%s: %s\n", what, strerror(errno));
	exit(1);
}

/* The repeat count for this run: `base` times the scale argument. */
static inline uint64_t sys_count(int argc, char **argv, uint64_t base)
{
	return bench_scaled(base, bench_scale(argc, argv), 1);
}

#endif
