/*
 * image-lock: a small Node-API addon for open file description (OFD) locks,
 * which Node cannot take itself. tsvisor locks every image a VM uses (disks,
 * their backing files, kernel, initrd, firmware) so two VMs, in one process
 * or in several, never write the same image or write one another VM boots.
 *
 *   lock(fd, exclusive) -> 0 | 1 | 2 | -errno
 *     fcntl(F_OFD_SETLK) on the whole file: a write lock when `exclusive`,
 *     else a read lock. 0: taken. 1 or 2: refused, because someone holds a
 *     read (1) or write (2) lock that conflicts (found with F_OFD_GETLK).
 *     Negative: another error (-errno).
 *
 * OFD locks belong to the open file description, not to the process: two fds
 * opened separately conflict even in the same process (two VMs of one daemon),
 * closing some other fd of the same file does not drop them (unlike POSIX
 * record locks), and they go away when the last fd of the description is
 * closed, which the kernel does when the process ends however it ends.
 * Built by scripts/build-native.sh; without it src/storage/image-lock.ts
 * falls back to a table inside one process.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>

static napi_value lock(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  int32_t fd = -1;
  bool exclusive = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 ||
      napi_get_value_bool(env, argv[1], &exclusive) != napi_ok) {
    napi_throw_error(env, NULL, "image-lock.lock(fd, exclusive): bad arguments");
    return NULL;
  }
  struct flock fl;
  memset(&fl, 0, sizeof fl); /* l_pid must be 0 for OFD locks */
  fl.l_type = exclusive ? F_WRLCK : F_RDLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 0; /* the whole file, however it grows */
  int result = 0;
  if (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
    int err = errno;
    if (err == EAGAIN || err == EACCES) {
      struct flock q;
      memset(&q, 0, sizeof q);
      q.l_type = exclusive ? F_WRLCK : F_RDLCK;
      q.l_whence = SEEK_SET;
      /* The holder may have gone between the two calls: then report a write lock, the stricter guess. */
      result = (fcntl(fd, F_OFD_GETLK, &q) == 0 && q.l_type == F_RDLCK) ? 1 : 2;
    } else {
      result = -err;
    }
  }
  if (napi_create_int32(env, result, &out) != napi_ok) return NULL;
  return out;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "lock", NAPI_AUTO_LENGTH, lock, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "lock", fn) != napi_ok) return NULL;
  return exports;
}
