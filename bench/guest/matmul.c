/* Dense double-precision matrix multiply, 256x256, C += A * B repeated a
 * number of rounds (i-k-j loop order). The checksum is the exact bit
 * pattern of the sum of C and of its trace, so every floating-point
 * operation has to be rounded identically by both emulators. */
#include <string.h>
#include "bench.h"

#define N 256
#define ROUNDS 8

static double A[N][N], B[N][N], C[N][N];

static void multiply_add(void)
{
	for (int i = 0; i < N; i++) {
		for (int k = 0; k < N; k++) {
			double aik = A[i][k];
			for (int j = 0; j < N; j++)
				C[i][j] += aik * B[k][j];
		}
	}
}

static uint64_t bits(double d)
{
	uint64_t u;
	memcpy(&u, &d, sizeof u);
	return u;
}

int main(int argc, char **argv)
{
	double scale = bench_scale(argc, argv);
	int rounds = (int)bench_scaled(ROUNDS, scale, 1);
	uint64_t st = 0x4d41544d554c3031ULL;
	for (int i = 0; i < N; i++) {
		for (int j = 0; j < N; j++) {
			/* Values in [-1, 1) with a full mantissa. */
			A[i][j] = (double)(int64_t)bench_rand(&st) * 0x1p-63;
			B[i][j] = (double)(int64_t)bench_rand(&st) * 0x1p-63;
			C[i][j] = 0.0;
		}
	}

	double t0 = bench_now();
	for (int r = 0; r < rounds; r++) {
		multiply_add();
		/* Feed the result back so rounds cannot be merged. */
		A[r % N][(r * 7) % N] = C[(r * 3) % N][(r * 5) % N] * 0.5;
	}
	double t1 = bench_now();

	double sum = 0.0, trace = 0.0;
	for (int i = 0; i < N; i++) {
		trace += C[i][i];
		for (int j = 0; j < N; j++)
			sum += C[i][j];
	}
	uint64_t h = bench_mix(BENCH_MIX_INIT, bits(sum));
	h = bench_mix(h, bits(trace));
	for (int i = 0; i < N; i += 17)
		h = bench_mix(h, bits(C[i][(i * 31) % N]));
	bench_report_u64("matmul", t1 - t0, h);
	return 0;
}
