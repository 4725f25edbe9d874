/*
 * tap-relay: opens an existing Linux TAP device and relays its frames over
 * stdin/stdout, each frame preceded by its length (2 bytes, big-endian).
 * tsvisor runs it because Node cannot issue the TUNSETIFF ioctl itself.
 * On success it first writes the 4 bytes "TAP1"; on failure it prints one line
 * to stderr and exits with status 2.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define MAX_FRAME 65535

static int write_all(int fd, const unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2 || strlen(argv[1]) >= IFNAMSIZ || argv[1][0] == 0) {
    fprintf(stderr, "usage: tap-relay IFNAME\n");
    return 2;
  }
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    fprintf(stderr, "cannot open /dev/net/tun: %s\n", strerror(errno));
    return 2;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  strncpy(ifr.ifr_name, argv[1], IFNAMSIZ - 1);
  /* TUNSETIFF on a name that does not exist would create a device (with
     CAP_NET_ADMIN); tsvisor only opens existing ones, so check first. */
  char path[64 + IFNAMSIZ];
  snprintf(path, sizeof path, "/sys/class/net/%s", argv[1]);
  if (access(path, F_OK) != 0) {
    fprintf(stderr, "no such network device: %s\n", argv[1]);
    return 2;
  }
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    if (e == EPERM || e == EACCES)
      fprintf(stderr, "cannot attach to TAP device %s: %s (it must be owned by this user, or run as root)\n", argv[1], strerror(e));
    else if (e == EINVAL || e == EBADFD)
      fprintf(stderr, "cannot attach to %s: not a TAP device or already in use (%s)\n", argv[1], strerror(e));
    else
      fprintf(stderr, "cannot attach to TAP device %s: %s\n", argv[1], strerror(e));
    return 2;
  }
  if (write_all(1, (const unsigned char *)"TAP1", 4) < 0) return 1;

  static unsigned char in[2 + MAX_FRAME];
  static unsigned char out[2 + MAX_FRAME];
  size_t have = 0;
  struct pollfd p[2] = {{fd, POLLIN, 0}, {0, POLLIN, 0}};
  for (;;) {
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    if (p[0].revents & POLLIN) {
      ssize_t n = read(fd, out + 2, MAX_FRAME);
      if (n > 0) {
        out[0] = (unsigned char)(n >> 8);
        out[1] = (unsigned char)n;
        if (write_all(1, out, (size_t)n + 2) < 0) return 0;
      }
    }
    if (p[1].revents & (POLLIN | POLLHUP)) {
      ssize_t n = read(0, in + have, sizeof in - have);
      if (n <= 0) return 0; /* tsvisor went away */
      have += (size_t)n;
      for (;;) {
        if (have < 2) break;
        size_t len = ((size_t)in[0] << 8) | in[1];
        if (have < 2 + len) break;
        if (len > 0 && write(fd, in + 2, len) < 0 && errno != EIO) {
          /* A frame the device refuses is dropped, as a real NIC would. */
        }
        memmove(in, in + 2 + len, have - 2 - len);
        have -= 2 + len;
      }
    }
    if (p[0].revents & (POLLERR | POLLHUP)) return 1;
  }
}
