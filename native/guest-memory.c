/*
 * guest-memory: a small Node-API addon for the two things JavaScript cannot do
 * with a VM's guest RAM (one WebAssembly.Memory):
 *
 *   release(buffer, offset, length) -> bytes
 *     madvise(MADV_DONTNEED) on the whole host pages inside the range, so pages
 *     the guest gave back (balloon inflate, free page reporting) return to the
 *     host. The memory is a private anonymous mapping, so the pages read as
 *     zero afterwards, which is what the balloon device promises the guest.
 *
 *   trim() -> boolean
 *     malloc_trim(0): gives back what the C heap holds free (V8's compilers
 *     free a lot of it after translating guest code).
 *
 *   arenaMax(n) -> boolean
 *     mallopt(M_ARENA_MAX, n): at most n malloc arenas from now on. glibc gives
 *     threads arenas of their own (up to 8 per core), and V8's compiler and GC
 *     threads each leave several MiB of freed memory scattered in theirs;
 *     `tsvisor run` calls it before its VM thread starts (see bin/tsvisor.js).
 *
 * and exports the host's page size as pageSize.
 *
 *   resident(buffer, offset, length) -> bytes
 *     mincore(): how much of the range is backed by host RAM right now (the
 *     guest RAM a VM has "touched"), for monitoring.
 *
 *   mapFile(buffer, offset, length, path) -> true
 *     snapshot restore: maps the file `path` (a snapshot's memory file, at
 *     least `length` bytes) over [offset, offset + length) of the buffer with
 *     MAP_PRIVATE | MAP_FIXED, so guest RAM reads the file lazily, page by page
 *     as the guest touches it, and writes stay private (copy on write). The
 *     range must be page-aligned in host memory; throws otherwise.
 *
 *   dataPages(buffer, offset, length) -> Uint8Array
 *     snapshot: one byte per 4 KiB page of the range, 1 when the page holds
 *     anything but zeros. Pages the host never backed (mincore) are not read.
 *
 *   seekData(fd, offset, hole) -> offset or -1
 *     lseek(SEEK_DATA), or SEEK_HOLE when `hole` is true, on an open file: where
 *     the next data (or hole) at or after `offset` starts, -1 past the last
 *     data. Lets --copy-storage skip a sparse raw disk's holes unread. Throws
 *     when the file system cannot say (the caller then reads everything).
 *
 * `buffer` is an ArrayBuffer or a Uint8Array over the whole of one (guest RAM
 * lives in a SharedArrayBuffer, which Node-API of this Node version reads only
 * through a typed array); offsets count from the buffer's start.
 *
 * All check their arguments against the buffer's bounds and throw on misuse.
 * Built by scripts/build-native.sh; tsvisor runs without it (src/vm/host-memory.ts
 * says so) and then only loses these two abilities.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>
#include <errno.h>

#define CHECK(env, call)                                                        \
  do {                                                                          \
    if ((call) != napi_ok) {                                                    \
      napi_throw_error((env), NULL, "guest-memory: bad arguments");            \
      return NULL;                                                              \
    }                                                                           \
  } while (0)

/* The bytes of an ArrayBuffer, or of a typed array (its whole buffer, see above). */
static int buffer_bytes(napi_env env, napi_value v, void **data, size_t *size) {
  bool is_typed = false;
  if (napi_get_arraybuffer_info(env, v, data, size) == napi_ok) return 1;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed) return 0;
  napi_typedarray_type type;
  size_t length = 0, offset = 0;
  if (napi_get_typedarray_info(env, v, &type, &length, data, NULL, &offset) != napi_ok || type != napi_uint8_array ||
      offset != 0 || *data == NULL) {
    return 0;
  }
  *size = length;
  return 1;
}

/* Resolves the arguments to a page-aligned [*start, *end) inside the buffer. */
static int page_range(napi_env env, napi_callback_info info, uint8_t **start, uint8_t **end, uintptr_t *page) {
  size_t argc = 3;
  napi_value argv[3];
  void *data = NULL;
  size_t size = 0;
  double off = 0, len = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) return 0;
  if (!buffer_bytes(env, argv[0], &data, &size)) return 0;
  if (napi_get_value_double(env, argv[1], &off) != napi_ok) return 0;
  if (napi_get_value_double(env, argv[2], &len) != napi_ok) return 0;
  if (!(off >= 0) || !(len >= 0) || off + len > (double)size || data == NULL) return 0;
  *page = (uintptr_t)sysconf(_SC_PAGESIZE);
  uintptr_t a = (uintptr_t)data + (uintptr_t)off;
  uintptr_t b = a + (uintptr_t)len;
  /* Only whole pages inside the range: a partial page may hold live data. */
  a = (a + *page - 1) & ~(*page - 1);
  b &= ~(*page - 1);
  if (b < a) b = a;
  *start = (uint8_t *)a;
  *end = (uint8_t *)b;
  return 1;
}

static napi_value release(napi_env env, napi_callback_info info) {
  uint8_t *a, *b;
  uintptr_t page;
  napi_value out;
  if (!page_range(env, info, &a, &b, &page)) {
    napi_throw_error(env, NULL, "guest-memory.release(buffer, offset, length): bad arguments");
    return NULL;
  }
  double done = 0;
  /* A fresh anonymous mapping rather than MADV_DONTNEED: after a snapshot restore
     the range may be a private file mapping, where DONTNEED would bring the
     file's bytes back instead of zeros. */
  if (b > a && mmap(a, (size_t)(b - a), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED) {
    done = (double)(b - a);
  }
  CHECK(env, napi_create_double(env, done, &out));
  return out;
}

static napi_value resident(napi_env env, napi_callback_info info) {
  uint8_t *a, *b;
  uintptr_t page;
  napi_value out;
  if (!page_range(env, info, &a, &b, &page)) {
    napi_throw_error(env, NULL, "guest-memory.resident(buffer, offset, length): bad arguments");
    return NULL;
  }
  double bytes = 0;
  size_t pages = (size_t)(b - a) / page;
  /* In chunks, so the vector stays small whatever the guest's size. */
  unsigned char vec[4096];
  for (size_t i = 0; i < pages; i += sizeof vec) {
    size_t n = pages - i < sizeof vec ? pages - i : sizeof vec;
    if (mincore(a + i * page, n * page, vec) != 0) break;
    for (size_t j = 0; j < n; j++) bytes += (vec[j] & 1) ? (double)page : 0;
  }
  CHECK(env, napi_create_double(env, bytes, &out));
  return out;
}

/* malloc_trim(0): glibc keeps memory freed by V8's compilers in its arenas; this returns it to the OS. */
static napi_value trim(napi_env env, napi_callback_info info) {
  napi_value out;
  (void)info;
#ifdef __GLIBC__
  int released = malloc_trim(0);
#else
  int released = 0;
#endif
  CHECK(env, napi_get_boolean(env, released != 0, &out));
  return out;
}

/* mallopt(M_ARENA_MAX, n): threads that have no arena yet share the existing ones (see the header). */
static napi_value arena_max(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  int32_t n = 0;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_int32(env, argv[0], &n) != napi_ok || n < 1) {
    napi_throw_type_error(env, NULL, "arenaMax(n): n must be a positive integer");
    return NULL;
  }
#ifdef __GLIBC__
  int ok = mallopt(M_ARENA_MAX, n);
#else
  int ok = 0;
#endif
  CHECK(env, napi_get_boolean(env, ok != 0, &out));
  return out;
}

static napi_value map_file(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  void *data = NULL;
  size_t size = 0;
  double off = 0, len = 0;
  char path[4096];
  size_t plen = 0;
  napi_value out;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4 ||
      !buffer_bytes(env, argv[0], &data, &size) ||
      napi_get_value_double(env, argv[1], &off) != napi_ok || napi_get_value_double(env, argv[2], &len) != napi_ok ||
      napi_get_value_string_utf8(env, argv[3], path, sizeof path, &plen) != napi_ok || plen == 0 || plen >= sizeof path - 1) {
    napi_throw_error(env, NULL, "guest-memory.mapFile(buffer, offset, length, path): bad arguments");
    return NULL;
  }
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  uintptr_t a = (uintptr_t)data + (uintptr_t)off;
  if (!(off >= 0) || !(len > 0) || off + len > (double)size || data == NULL || (a & (page - 1)) != 0 ||
      ((uintptr_t)len & (page - 1)) != 0) {
    napi_throw_error(env, NULL, "guest-memory.mapFile: range not page-aligned or outside the buffer");
    return NULL;
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    napi_throw_error(env, NULL, "guest-memory.mapFile: cannot open the memory file");
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || (double)st.st_size < len) {
    close(fd);
    napi_throw_error(env, NULL, "guest-memory.mapFile: the memory file is shorter than guest RAM");
    return NULL;
  }
  void *m = mmap((void *)a, (size_t)len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0);
  close(fd); /* the mapping keeps the file */
  if (m == MAP_FAILED) {
    napi_throw_error(env, NULL, "guest-memory.mapFile: mmap failed");
    return NULL;
  }
  CHECK(env, napi_get_boolean(env, 1, &out));
  return out;
}

static napi_value data_pages(napi_env env, napi_callback_info info) {
  uint8_t *a, *b;
  uintptr_t page;
  napi_value ab, out;
  void *flags = NULL;
  if (!page_range(env, info, &a, &b, &page) || page != 4096) {
    napi_throw_error(env, NULL, "guest-memory.dataPages(buffer, offset, length): bad arguments or host pages not 4 KiB");
    return NULL;
  }
  size_t pages = (size_t)(b - a) / 4096;
  CHECK(env, napi_create_arraybuffer(env, pages, &flags, &ab));
  uint8_t *f = (uint8_t *)flags;
  unsigned char vec[4096];
  for (size_t i = 0; i < pages; i += sizeof vec) {
    size_t n = pages - i < sizeof vec ? pages - i : sizeof vec;
    int have = mincore(a + i * 4096, n * 4096, vec) == 0;
    for (size_t j = 0; j < n; j++) {
      f[i + j] = 0;
      if (have && !(vec[j] & 1)) continue;
      const uint64_t *w = (const uint64_t *)(a + (i + j) * 4096);
      for (size_t k = 0; k < 4096 / 8; k++) {
        if (w[k] != 0) {
          f[i + j] = 1;
          break;
        }
      }
    }
  }
  CHECK(env, napi_create_typedarray(env, napi_uint8_array, pages, ab, 0, &out));
  return out;
}

static napi_value seek_data(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], out;
  int32_t fd;
  int64_t offset;
  bool hole;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int64(env, argv[1], &offset) != napi_ok ||
      napi_get_value_bool(env, argv[2], &hole) != napi_ok || fd < 0 || offset < 0) {
    napi_throw_error(env, NULL, "guest-memory.seekData(fd, offset, hole): bad arguments");
    return NULL;
  }
  off_t r = lseek(fd, (off_t)offset, hole ? SEEK_HOLE : SEEK_DATA);
  if (r < 0 && errno != ENXIO) {
    napi_throw_error(env, NULL, "guest-memory.seekData: lseek failed");
    return NULL;
  }
  CHECK(env, napi_create_double(env, r < 0 ? -1.0 : (double)r, &out));
  return out;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  CHECK(env, napi_create_function(env, "release", NAPI_AUTO_LENGTH, release, NULL, &fn));
  CHECK(env, napi_set_named_property(env, exports, "release", fn));
  CHECK(env, napi_create_function(env, "resident", NAPI_AUTO_LENGTH, resident, NULL, &fn));
  CHECK(env, napi_set_named_property(env, exports, "resident", fn));
  CHECK(env, napi_create_function(env, "dataPages", NAPI_AUTO_LENGTH, data_pages, NULL, &fn));
  CHECK(env, napi_set_named_property(env, exports, "dataPages", fn));
  CHECK(env, napi_create_function(env, "mapFile", NAPI_AUTO_LENGTH, map_file, NULL, &fn));
  CHECK(env, napi_set_named_property(env, exports, "mapFile", fn));
  CHECK(env, napi_create_function(env, "seekData", NAPI_AUTO_LENGTH, seek_data, NULL, &fn));
  CHECK(env, napi_set_named_property(env, exports, "seekData", fn));
  CHECK(env, napi_create_function(env, "trim", NAPI_AUTO_LENGTH, trim, NULL, &fn));
  CHECK(env, napi_set_named_property(env, exports, "trim", fn));
  CHECK(env, napi_create_function(env, "arenaMax", NAPI_AUTO_LENGTH, arena_max, NULL, &fn));
  CHECK(env, napi_set_named_property(env, exports, "arenaMax", fn));
  CHECK(env, napi_create_double(env, (double)sysconf(_SC_PAGESIZE), &fn));
  CHECK(env, napi_set_named_property(env, exports, "pageSize", fn));
  return exports;
}
