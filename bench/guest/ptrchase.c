/* Linked-list pointer chase over 64 MiB: one million 64-byte nodes linked
 * in a single random cycle (Sattolo's shuffle), so consecutive steps land on
 * unrelated cache lines and pages (TLB pressure). Only the chase is timed. */
#include "bench.h"

struct node {
	struct node *next;
	uint64_t value;
	uint64_t pad[6];
};

#define NODES (1u << 20) /* 64 MiB of nodes */
#define STEPS 5000000u

int main(int argc, char **argv)
{
	double scale = bench_scale(argc, argv);
	uint64_t steps = bench_scaled(STEPS, scale, 1000);
	uint32_t n = NODES;
	struct node *nodes = bench_alloc(sizeof(struct node) * n);
	uint32_t *perm = bench_alloc(sizeof(uint32_t) * n);
	uint64_t st = 0x5054524348415345ULL;

	for (uint32_t i = 0; i < n; i++)
		perm[i] = i;
	/* Sattolo: a uniformly random permutation with exactly one cycle. */
	for (uint32_t i = n - 1; i > 0; i--) {
		uint32_t j = (uint32_t)(bench_rand(&st) % i);
		uint32_t t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	for (uint32_t i = 0; i < n; i++) {
		nodes[i].next = &nodes[perm[i]];
		nodes[i].value = bench_rand(&st) >> 40;
	}
	free(perm);

	double t0 = bench_now();
	struct node *p = &nodes[0];
	uint64_t sum = 0;
	for (uint64_t s = 0; s < steps; s++) {
		sum += p->value ^ s;
		p = p->next;
	}
	double t1 = bench_now();

	uint64_t h = bench_mix(BENCH_MIX_INIT, sum);
	h = bench_mix(h, (uint64_t)(p - nodes));
	bench_report_u64("ptrchase", t1 - t0, h);
	return 0;
}
