/* Block device throughput inside the guest, for bench/disk.ts.
 *
 *     diskio [DEVICE [MIB [OPS]]]      (defaults: /dev/vda 64 4096)
 *
 * Opens DEVICE with O_DIRECT (so the guest's page cache stays out of the
 * way: every request reaches the virtio-blk device) and runs four tests over
 * its first MIB MiB, in this order:
 *
 *     seqwrite   MIB requests of 1 MiB, front to back, then fdatasync
 *     seqread    the same region read back with 1 MiB requests
 *     randwrite  OPS writes of 4 KiB at random 4 KiB-aligned offsets, then fdatasync
 *     randread   OPS reads of 4 KiB at other random offsets
 *
 * Offsets come from a fixed-seed generator, and what is written depends only
 * on the offset and the test, so every run on every emulator does exactly the
 * same I/O. Each test prints one line
 *
 *     DISK <test> <MiB/s> <ops/s> <seconds> <checksum>
 *
 * where the checksum covers the data read (and the offsets it was read from)
 * and is "-" for the write tests. The clock runs from the first request to
 * the end of the last one (or of the fdatasync after writes); generating and
 * checksumming data happens outside it. A final `DISK done` line says that
 * every test finished. This program overwrites the device. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

#define SEQ_BLOCK (1u << 20)
#define RAND_BLOCK 4096u
#define ALIGN 4096u

/* CLOCK_MONOTONIC through the system call, not the vDSO (see bench.h: the
 * vDSO reads the `time` CSR from user mode, which depends on the platform
 * having set scounteren.TM). */
static double now(void)
{
	struct timespec ts;
	if (syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts) != 0) {
		perror("clock_gettime");
		exit(1);
	}
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* splitmix64 */
static uint64_t next_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Fills `len` bytes (a multiple of 8) with words that depend on the byte
 * offset on the device and on a per-test tag. */
static void fill(uint8_t *buf, size_t len, uint64_t devoff, uint64_t tag)
{
	uint64_t *w = (uint64_t *)buf;
	for (size_t i = 0; i < len / 8; i++) {
		uint64_t x = (devoff + 8 * i) ^ (tag << 56);
		x *= 0x9e3779b97f4a7c15ULL;
		w[i] = x ^ (x >> 29);
	}
}

/* A cheap 64-bit checksum over words (order-sensitive). */
static uint64_t sum_words(uint64_t h, const uint8_t *buf, size_t len)
{
	const uint64_t *w = (const uint64_t *)buf;
	for (size_t i = 0; i < len / 8; i++)
		h = (h ^ w[i]) * 0x100000001b3ULL + (h >> 33);
	return h;
}

static void *aligned(size_t n)
{
	void *p = NULL;
	int e = posix_memalign(&p, ALIGN, n);
	if (e != 0) {
		fprintf(stderr, "diskio: posix_memalign(%zu): %s\n", n, strerror(e));
		exit(1);
	}
	memset(p, 0, n);
	return p;
}

static void full_io(int fd, int write_it, uint8_t *buf, size_t len, off_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = write_it ? pwrite(fd, buf + done, len - done, off + (off_t)done)
				     : pread(fd, buf + done, len - done, off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "diskio: %s at %lld: %s\n", write_it ? "pwrite" : "pread",
				(long long)(off + (off_t)done), n < 0 ? strerror(errno) : "end of device");
			exit(1);
		}
		done += (size_t)n;
	}
}

static void sync_dev(int fd)
{
	if (fdatasync(fd) != 0) {
		perror("diskio: fdatasync");
		exit(1);
	}
}

static void report(const char *test, uint64_t bytes, uint64_t ops, double secs, const char *sum)
{
	if (secs <= 0)
		secs = 1e-9;
	printf("DISK %s %.2f %.1f %.6f %s\n", test, (double)bytes / (1024.0 * 1024.0) / secs,
	       (double)ops / secs, secs, sum);
	fflush(stdout);
}

static void report_sum(const char *test, uint64_t bytes, uint64_t ops, double secs, uint64_t sum)
{
	char s[17];
	snprintf(s, sizeof s, "%016llx", (unsigned long long)sum);
	report(test, bytes, ops, secs, s);
}

int main(int argc, char **argv)
{
	const char *dev = argc > 1 ? argv[1] : "/dev/vda";
	long mib = argc > 2 ? strtol(argv[2], NULL, 10) : 64;
	long ops = argc > 3 ? strtol(argv[3], NULL, 10) : 4096;
	if (mib < 1 || mib > 4096 || ops < 1 || ops > (1L << 24)) {
		fprintf(stderr, "usage: %s [DEVICE [MIB 1..4096 [OPS]]]\n", argv[0]);
		return 2;
	}
	const uint64_t region = (uint64_t)mib * SEQ_BLOCK;
	const uint64_t nblocks = region / RAND_BLOCK;

	int fd = open(dev, O_RDWR | O_DIRECT);
	if (fd < 0) {
		fprintf(stderr, "diskio: open %s with O_DIRECT: %s\n", dev, strerror(errno));
		return 1;
	}
	off_t devsize = lseek(fd, 0, SEEK_END);
	if (devsize < 0 || (uint64_t)devsize < region) {
		fprintf(stderr, "diskio: %s is smaller than %ld MiB\n", dev, mib);
		return 1;
	}

	/* Everything the tests write is generated up front. */
	uint8_t *seq = aligned(region);
	for (uint64_t off = 0; off < region; off += SEQ_BLOCK)
		fill(seq + off, SEQ_BLOCK, off, 1);
	uint8_t *rnd = aligned((size_t)ops * RAND_BLOCK);
	uint64_t *woff = malloc((size_t)ops * sizeof *woff);
	uint64_t *roff = malloc((size_t)ops * sizeof *roff);
	if (!woff || !roff) {
		fprintf(stderr, "diskio: out of memory\n");
		return 1;
	}
	uint64_t ws = 0x5eed0001, rs = 0x5eed0002;
	for (long i = 0; i < ops; i++) {
		woff[i] = (next_rand(&ws) % nblocks) * RAND_BLOCK;
		roff[i] = (next_rand(&rs) % nblocks) * RAND_BLOCK;
		fill(rnd + (size_t)i * RAND_BLOCK, RAND_BLOCK, woff[i], 2 + (uint64_t)(i & 0x3f));
	}

	/* seqwrite */
	double t0 = now();
	for (uint64_t off = 0; off < region; off += SEQ_BLOCK)
		full_io(fd, 1, seq + off, SEQ_BLOCK, (off_t)off);
	sync_dev(fd);
	double t1 = now();
	report("seqwrite", region, region / SEQ_BLOCK, t1 - t0, "-");

	/* seqread: into the same buffer, cleared first */
	memset(seq, 0, region);
	t0 = now();
	for (uint64_t off = 0; off < region; off += SEQ_BLOCK)
		full_io(fd, 0, seq + off, SEQ_BLOCK, (off_t)off);
	t1 = now();
	report_sum("seqread", region, region / SEQ_BLOCK, t1 - t0, sum_words(0x243f6a8885a308d3ULL, seq, region));

	/* randwrite */
	t0 = now();
	for (long i = 0; i < ops; i++)
		full_io(fd, 1, rnd + (size_t)i * RAND_BLOCK, RAND_BLOCK, (off_t)woff[i]);
	sync_dev(fd);
	t1 = now();
	report("randwrite", (uint64_t)ops * RAND_BLOCK, (uint64_t)ops, t1 - t0, "-");

	/* randread: reads see the sequential data or a random write's */
	memset(rnd, 0, (size_t)ops * RAND_BLOCK);
	t0 = now();
	for (long i = 0; i < ops; i++)
		full_io(fd, 0, rnd + (size_t)i * RAND_BLOCK, RAND_BLOCK, (off_t)roff[i]);
	t1 = now();
	uint64_t h = 0x13198a2e03707344ULL;
	for (long i = 0; i < ops; i++) {
		h = sum_words(h ^ roff[i], rnd + (size_t)i * RAND_BLOCK, RAND_BLOCK);
	}
	report_sum("randread", (uint64_t)ops * RAND_BLOCK, (uint64_t)ops, t1 - t0, h);

	close(fd);
	printf("DISK done\n");
	fflush(stdout);
	return 0;
}
