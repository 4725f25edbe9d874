/* A branchy string workload: LZ77-style compression of generated text with
 * a hash-chained match finder (32 KiB window), followed by decompression
 * and a byte-for-byte comparison. Text generation is not timed.
 *
 * Token format: a control byte c.
 *   c < 0x80: c + 1 literal bytes follow.
 *   c >= 0x80: a match of length (c & 0x7f) + MIN_MATCH, followed by a
 *              16-bit little-endian distance (1..WINDOW). */
#include <string.h>
#include "bench.h"

#define TEXT_BYTES (16u << 20)
#define WINDOW 32768u
#define MIN_MATCH 4u
#define MAX_MATCH (0x7fu + MIN_MATCH)
#define HASH_BITS 15
#define MAX_CHAIN 24

static const char *const words[] = {
	"the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was",
	"with", "be", "by", "on", "not", "he", "this", "are", "or", "his", "from",
	"at", "which", "but", "have", "an", "had", "they", "you", "were", "their",
	"one", "all", "we", "can", "her", "has", "there", "been", "if", "more",
	"when", "will", "would", "who", "so", "no", "machine", "virtual", "guest",
	"kernel", "memory", "page", "table", "interrupt", "register", "instruction",
	"translation", "emulator", "monitor", "benchmark", "processor", "cache",
	"hypervisor", "privilege", "exception", "console", "device", "timer",
};
#define NWORDS (sizeof words / sizeof words[0])

static size_t gen_text(uint8_t *out, size_t n, uint64_t *st)
{
	size_t len = 0;
	int sentence = 0;
	while (len + 32 < n) {
		uint64_t r = bench_rand(st);
		/* Skewed word choice: frequent words much more often. */
		unsigned w = (unsigned)((r & 0xffff) * (r >> 16 & 0xffff) >> 16) % NWORDS;
		w = (unsigned)(((uint64_t)w * w) / NWORDS);
		const char *s = words[w];
		size_t k = strlen(s);
		memcpy(out + len, s, k);
		if (sentence == 0 && out[len] >= 'a')
			out[len] -= 32;
		len += k;
		sentence++;
		if ((r >> 40) % 11 == 0 || sentence > 14) {
			out[len++] = (r >> 50) % 4 == 0 ? '?' : '.';
			out[len++] = (r >> 45) % 6 == 0 ? '\n' : ' ';
			sentence = 0;
		} else if ((r >> 36) % 13 == 0) {
			out[len++] = ',';
			out[len++] = ' ';
		} else if ((r >> 32) % 97 == 0) {
			/* An occasional number breaks up the repetition. */
			len += (size_t)sprintf((char *)out + len, " %u ", (unsigned)(r >> 54));
		} else {
			out[len++] = ' ';
		}
	}
	return len;
}

static inline uint32_t hash4(const uint8_t *p)
{
	uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
	return (v * 2654435761u) >> (32 - HASH_BITS);
}

static int32_t head[1 << HASH_BITS];
static int32_t chain[WINDOW];

static size_t compress(const uint8_t *in, size_t n, uint8_t *out)
{
	size_t o = 0, lit_start = 0, i = 0;
	for (size_t h = 0; h < (1u << HASH_BITS); h++)
		head[h] = -1;

#define FLUSH_LITERALS(end)                                         \
	do {                                                            \
		size_t s_ = lit_start;                                      \
		while (s_ < (end)) {                                        \
			size_t k_ = (end) - s_ > 128 ? 128 : (end) - s_;        \
			out[o++] = (uint8_t)(k_ - 1);                           \
			memcpy(out + o, in + s_, k_);                           \
			o += k_;                                                \
			s_ += k_;                                               \
		}                                                           \
	} while (0)

	while (i + MIN_MATCH <= n) {
		uint32_t h = hash4(in + i);
		int32_t cand = head[h];
		size_t best_len = 0, best_dist = 0;
		size_t limit = n - i < MAX_MATCH ? n - i : MAX_MATCH;
		for (int depth = 0; cand >= 0 && depth < MAX_CHAIN; depth++) {
			size_t dist = i - (size_t)cand;
			if (dist > WINDOW)
				break;
			if (in[cand + best_len] == in[i + best_len]) {
				size_t l = 0;
				while (l < limit && in[cand + l] == in[i + l])
					l++;
				if (l > best_len) {
					best_len = l;
					best_dist = dist;
					if (l == limit)
						break;
				}
			}
			int32_t next = chain[(size_t)cand % WINDOW];
			if (next >= cand)
				break;
			cand = next;
		}
		if (best_len >= MIN_MATCH) {
			FLUSH_LITERALS(i);
			out[o++] = (uint8_t)(0x80 | (best_len - MIN_MATCH));
			out[o++] = (uint8_t)(best_dist & 0xff);
			out[o++] = (uint8_t)(best_dist >> 8);
			/* Insert every position of the match into the chains. */
			for (size_t k = 0; k < best_len; k++, i++) {
				if (i + MIN_MATCH <= n) {
					uint32_t hk = hash4(in + i);
					chain[i % WINDOW] = head[hk];
					head[hk] = (int32_t)i;
				}
			}
			lit_start = i;
		} else {
			chain[i % WINDOW] = head[h];
			head[h] = (int32_t)i;
			i++;
		}
	}
	FLUSH_LITERALS(n);
	return o;
}

static size_t decompress(const uint8_t *in, size_t n, uint8_t *out)
{
	size_t i = 0, o = 0;
	while (i < n) {
		uint8_t c = in[i++];
		if (c < 0x80) {
			size_t k = (size_t)c + 1;
			memcpy(out + o, in + i, k);
			i += k;
			o += k;
		} else {
			size_t len = (c & 0x7fu) + MIN_MATCH;
			size_t dist = (size_t)in[i] | (size_t)in[i + 1] << 8;
			i += 2;
			for (size_t k = 0; k < len; k++, o++)
				out[o] = out[o - dist]; /* overlapping copies are allowed */
		}
	}
	return o;
}

int main(int argc, char **argv)
{
	double scale = bench_scale(argc, argv);
	size_t cap = (size_t)bench_scaled(TEXT_BYTES, scale, 4096);
	uint8_t *text = bench_alloc(cap);
	uint8_t *packed = bench_alloc(cap + cap / 128 + 16);
	uint8_t *back = bench_alloc(cap);
	uint64_t st = 0x4c5a373754455854ULL;
	size_t n = gen_text(text, cap, &st);

	double t0 = bench_now();
	size_t m = compress(text, n, packed);
	size_t r = decompress(packed, m, back);
	double t1 = bench_now();

	if (r != n || memcmp(text, back, n) != 0) {
		fprintf(stderr, "lz77: round trip failed (%zu -> %zu -> %zu bytes)\n", n, m, r);
		return 1;
	}
	uint64_t h = bench_mix(BENCH_MIX_INIT, n);
	h = bench_mix(h, m);
	for (size_t k = 0; k < m; k++)
		h = (h ^ packed[k]) * 0x100000001b3ULL;
	bench_report_u64("lz77", t1 - t0, h);
	return 0;
}
