/* Sorts 10^6 random 32-bit integers with an introspective-free quicksort
 * (median of three, insertion sort for short ranges, recursion on the
 * smaller side only), then checks the result is sorted. Repeated for a few
 * rounds with fresh input; only the sorting and checking are timed. */
#include "bench.h"

#define N 1000000
#define ROUNDS 8
#define SMALL 16

static void insertion(int32_t *a, long lo, long hi)
{
	for (long i = lo + 1; i <= hi; i++) {
		int32_t v = a[i];
		long j = i - 1;
		while (j >= lo && a[j] > v) {
			a[j + 1] = a[j];
			j--;
		}
		a[j + 1] = v;
	}
}

static inline void swap(int32_t *a, long i, long j)
{
	int32_t t = a[i];
	a[i] = a[j];
	a[j] = t;
}

static void quicksort(int32_t *a, long lo, long hi)
{
	while (hi - lo >= SMALL) {
		long mid = lo + (hi - lo) / 2;
		if (a[mid] < a[lo]) swap(a, mid, lo);
		if (a[hi] < a[lo]) swap(a, hi, lo);
		if (a[hi] < a[mid]) swap(a, hi, mid);
		int32_t pivot = a[mid];
		long i = lo, j = hi;
		while (i <= j) {
			while (a[i] < pivot) i++;
			while (a[j] > pivot) j--;
			if (i <= j) {
				swap(a, i, j);
				i++;
				j--;
			}
		}
		/* Recurse into the smaller part, loop on the larger. */
		if (j - lo < hi - i) {
			quicksort(a, lo, j);
			lo = i;
		} else {
			quicksort(a, i, hi);
			hi = j;
		}
	}
	insertion(a, lo, hi);
}

int main(int argc, char **argv)
{
	double scale = bench_scale(argc, argv);
	int rounds = (int)bench_scaled(ROUNDS, scale, 1);
	long n = scale < 1.0 ? (long)bench_scaled(N, scale * ROUNDS, 1000) : N;
	int32_t *a = bench_alloc(sizeof(int32_t) * (size_t)n);
	uint64_t st = 0x534f525430303031ULL;
	uint64_t sum = BENCH_MIX_INIT;
	double total = 0;

	for (int r = 0; r < rounds; r++) {
		for (long i = 0; i < n; i++)
			a[i] = (int32_t)bench_rand(&st);
		double t0 = bench_now();
		quicksort(a, 0, n - 1);
		for (long i = 1; i < n; i++) {
			if (a[i - 1] > a[i]) {
				fprintf(stderr, "sort: not sorted at %ld\n", i);
				return 1;
			}
		}
		total += bench_now() - t0;
		for (long i = 0; i < n; i += n / 64 + 1)
			sum = bench_mix(sum, (uint32_t)a[i]);
		sum = bench_mix(sum, (uint32_t)a[n - 1]);
	}
	bench_report_u64("sort", total, sum);
	return 0;
}
