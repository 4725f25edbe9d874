/* A bytecode interpreter: a small stack machine (switch dispatch) running a
 * loop-heavy program. The program sums the Collatz stopping times of
 * 1..LIMIT and folds every value into a hash, all in bytecode. */
#include "bench.h"

enum op {
	OP_HALT, OP_PUSH, OP_LOAD, OP_STORE, OP_DUP, OP_DROP,
	OP_ADD, OP_SUB, OP_MUL, OP_AND, OP_XOR, OP_SHR, OP_LT, OP_EQ,
	OP_JMP, OP_JZ, OP_JNZ,
};

#define LIMIT 30000

/* Locals: 0 = i, 1 = n, 2 = steps, 3 = total, 4 = hash, 5 = limit. */
static int64_t program[256];
static int plen;

static int emit(int64_t v) { program[plen] = v; return plen++; }

static void build(int64_t limit)
{
	/* i = 1; total = 0; hash = 0; limit = LIMIT */
	emit(OP_PUSH); emit(1); emit(OP_STORE); emit(0);
	emit(OP_PUSH); emit(0); emit(OP_STORE); emit(3);
	emit(OP_PUSH); emit(0); emit(OP_STORE); emit(4);
	emit(OP_PUSH); emit(limit); emit(OP_STORE); emit(5);
	/* outer: if !(i < limit + 1) goto done */
	int outer = plen;
	emit(OP_LOAD); emit(0); emit(OP_LOAD); emit(5); emit(OP_PUSH); emit(1); emit(OP_ADD); emit(OP_LT);
	emit(OP_JZ); int j_done = emit(0);
	/* n = i; steps = 0 */
	emit(OP_LOAD); emit(0); emit(OP_STORE); emit(1);
	emit(OP_PUSH); emit(0); emit(OP_STORE); emit(2);
	/* inner: if n == 1 goto inner_end */
	int inner = plen;
	emit(OP_LOAD); emit(1); emit(OP_PUSH); emit(1); emit(OP_EQ);
	emit(OP_JNZ); int j_inner_end = emit(0);
	/* if (n & 1) n = 3n + 1 else n = n >> 1 */
	emit(OP_LOAD); emit(1); emit(OP_PUSH); emit(1); emit(OP_AND);
	emit(OP_JZ); int j_even = emit(0);
	emit(OP_LOAD); emit(1); emit(OP_PUSH); emit(3); emit(OP_MUL); emit(OP_PUSH); emit(1); emit(OP_ADD);
	emit(OP_STORE); emit(1);
	emit(OP_JMP); int j_next = emit(0);
	program[j_even] = plen;
	emit(OP_LOAD); emit(1); emit(OP_PUSH); emit(1); emit(OP_SHR); emit(OP_STORE); emit(1);
	program[j_next] = plen;
	/* hash = (hash ^ n) * 31; steps += 1 */
	emit(OP_LOAD); emit(4); emit(OP_LOAD); emit(1); emit(OP_XOR); emit(OP_PUSH); emit(31); emit(OP_MUL);
	emit(OP_STORE); emit(4);
	emit(OP_LOAD); emit(2); emit(OP_PUSH); emit(1); emit(OP_ADD); emit(OP_STORE); emit(2);
	emit(OP_JMP); emit(inner);
	program[j_inner_end] = plen;
	/* total += steps; i += 1 */
	emit(OP_LOAD); emit(3); emit(OP_LOAD); emit(2); emit(OP_ADD); emit(OP_STORE); emit(3);
	emit(OP_LOAD); emit(0); emit(OP_PUSH); emit(1); emit(OP_ADD); emit(OP_STORE); emit(0);
	emit(OP_JMP); emit(outer);
	program[j_done] = plen;
	/* leave total and hash on the stack */
	emit(OP_LOAD); emit(3); emit(OP_LOAD); emit(4);
	emit(OP_HALT);
}

struct result { int64_t top, below; uint64_t ops; };

static struct result run(const int64_t *code)
{
	int64_t stack[64], locals[8] = { 0 };
	int sp = 0;
	long pc = 0;
	uint64_t ops = 0;
	for (;;) {
		int64_t a, b;
		ops++;
		switch ((enum op)code[pc++]) {
		case OP_HALT:
			return (struct result){ stack[sp - 1], stack[sp - 2], ops };
		case OP_PUSH: stack[sp++] = code[pc++]; break;
		case OP_LOAD: stack[sp++] = locals[code[pc++]]; break;
		case OP_STORE: locals[code[pc++]] = stack[--sp]; break;
		case OP_DUP: stack[sp] = stack[sp - 1]; sp++; break;
		case OP_DROP: sp--; break;
		case OP_ADD: b = stack[--sp]; a = stack[sp - 1]; stack[sp - 1] = (int64_t)((uint64_t)a + (uint64_t)b); break;
		case OP_SUB: b = stack[--sp]; a = stack[sp - 1]; stack[sp - 1] = (int64_t)((uint64_t)a - (uint64_t)b); break;
		case OP_MUL: b = stack[--sp]; a = stack[sp - 1]; stack[sp - 1] = (int64_t)((uint64_t)a * (uint64_t)b); break;
		case OP_AND: b = stack[--sp]; stack[sp - 1] &= b; break;
		case OP_XOR: b = stack[--sp]; stack[sp - 1] ^= b; break;
		case OP_SHR: b = stack[--sp]; stack[sp - 1] = (int64_t)((uint64_t)stack[sp - 1] >> (b & 63)); break;
		case OP_LT: b = stack[--sp]; stack[sp - 1] = stack[sp - 1] < b; break;
		case OP_EQ: b = stack[--sp]; stack[sp - 1] = stack[sp - 1] == b; break;
		case OP_JMP: pc = code[pc]; break;
		case OP_JZ: pc = stack[--sp] == 0 ? code[pc] : pc + 1; break;
		case OP_JNZ: pc = stack[--sp] != 0 ? code[pc] : pc + 1; break;
		default:
			fprintf(stderr, "interp: bad opcode %lld at %ld\n", (long long)code[pc - 1], pc - 1);
			exit(1);
		}
	}
}

int main(int argc, char **argv)
{
	double scale = bench_scale(argc, argv);
	build((int64_t)bench_scaled(LIMIT, scale, 10));

	double t0 = bench_now();
	struct result r = run(program);
	double t1 = bench_now();

	uint64_t h = bench_mix(BENCH_MIX_INIT, (uint64_t)r.top);
	h = bench_mix(h, (uint64_t)r.below);
	h = bench_mix(h, r.ops);
	bench_report_u64("interp", t1 - t0, h);
	return 0;
}
