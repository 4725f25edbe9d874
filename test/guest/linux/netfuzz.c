/* netfuzz: a hostile guest for the network tests. Sends malformed and random
   Ethernet frames out of eth0 through an AF_PACKET socket: random bytes,
   IPv4 with broken header lengths, bad checksums, fragments and options, TCP
   with odd flag combinations, UDP with lying lengths, truncated ARP. The frames
   go to the MAC address written in /tmp/gwmac ("aa:bb:cc:dd:ee:ff").
   Freestanding (raw Linux syscalls), built by test/guest/build.sh. */

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;

#define SYS_openat 56
#define SYS_read 63
#define SYS_write 64
#define SYS_exit 93
#define SYS_ioctl 29
#define SYS_socket 198
#define SYS_sendto 206

static long sys6(long n, long a, long b, long c, long d, long e, long f) {
  register long a0 __asm__("a0") = a;
  register long a1 __asm__("a1") = b;
  register long a2 __asm__("a2") = c;
  register long a3 __asm__("a3") = d;
  register long a4 __asm__("a4") = e;
  register long a5 __asm__("a5") = f;
  register long a7 __asm__("a7") = n;
  __asm__ volatile("ecall" : "+r"(a0) : "r"(a1), "r"(a2), "r"(a3), "r"(a4), "r"(a5), "r"(a7) : "memory");
  return a0;
}

static void out(const char *s) {
  long n = 0;
  while (s[n]) n++;
  sys6(SYS_write, 1, (long)s, n, 0, 0, 0);
}

static void out_num(u64 v) {
  char b[24];
  int i = 23;
  b[i] = 0;
  do { b[--i] = (char)('0' + v % 10); v /= 10; } while (v);
  out(b + i);
}

static __attribute__((noreturn)) void die(const char *why) {
  out("netfuzz: ");
  out(why);
  out("\n");
  sys6(SYS_exit, 1, 0, 0, 0, 0, 0);
  for (;;) {}
}

static u64 rng = 0x9e3779b97f4a7c15ul;
static u32 rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (u32)(rng >> 11);
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static u16 csum(const u8 *p, int n) {
  u32 s = 0;
  for (int i = 0; i + 1 < n; i += 2) s += (u32)(p[i] << 8 | p[i + 1]);
  if (n & 1) s += (u32)(p[n - 1] << 8);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (u16)~s;
}

static u8 frame[1600];
static u8 gw[6];
static u8 me[6];

/* An IPv4 packet to 10.0.2.2 with a mutation picked by `kind`. Returns its length. */
static int ipv4(int kind) {
  u8 *ip = frame + 14;
  int plen = 20 + (int)(rnd() % 200);
  for (int i = 0; i < plen; i++) ip[i] = (u8)rnd();
  frame[12] = 0x08; frame[13] = 0x00;
  ip[0] = 0x45; ip[1] = 0;
  ip[2] = (u8)(plen >> 8); ip[3] = (u8)plen;
  ip[6] = 0x40; ip[7] = 0; ip[8] = 64;
  u8 protos[3] = {6, 17, 1};
  ip[9] = protos[rnd() % 3];
  ip[12] = 10; ip[13] = 0; ip[14] = 2; ip[15] = 15;
  ip[16] = 10; ip[17] = 0; ip[18] = 2; ip[19] = 2;
  if (ip[9] == 6) { /* TCP: odd flags (SYN+FIN, none, all, RST+data...) */
    u8 odd[6] = {0x03, 0x00, 0x3f, 0x04, 0x29, 0x12};
    ip[20 + 12] = 0x50;
    ip[20 + 13] = odd[rnd() % 6];
  }
  if (ip[9] == 17 && plen >= 28) { /* UDP whose length lies */
    u16 l = (u16)(rnd() % 2000);
    ip[20 + 4] = (u8)(l >> 8); ip[20 + 5] = (u8)l;
  }
  ip[10] = ip[11] = 0;
  u16 c = csum(ip, 20);
  ip[10] = (u8)(c >> 8); ip[11] = (u8)c;
  switch (kind % 6) {
  case 0: ip[0] = (u8)(0x40 | (rnd() % 5)); break;              /* header length below 5 words */
  case 1: ip[2] = 0xff; ip[3] = 0xff; break;                    /* total length beyond the frame */
  case 2: ip[6] = 0x20; ip[7] = (u8)rnd(); break;               /* a fragment */
  case 3: ip[10] ^= 0x5a; break;                                /* bad header checksum */
  case 4: ip[0] = 0x4f; break;                                  /* options to the end */
  default: ip[0] = (u8)(0x60 | (rnd() & 15)); break;            /* not version 4 */
  }
  return 14 + plen;
}

int test_main(void) {
  char text[32];
  long fd = sys6(SYS_openat, -100, (long)"/tmp/gwmac", 0, 0, 0, 0);
  if (fd < 0) die("cannot open /tmp/gwmac");
  long n = sys6(SYS_read, fd, (long)text, sizeof text, 0, 0, 0);
  if (n < 17) die("short /tmp/gwmac");
  for (int i = 0; i < 6; i++) {
    int h = hexval(text[3 * i]), l = hexval(text[3 * i + 1]);
    if (h < 0 || l < 0) die("bad /tmp/gwmac");
    gw[i] = (u8)(h << 4 | l);
  }
  long s = sys6(SYS_socket, 17 /* AF_PACKET */, 3 /* SOCK_RAW */, 0x0300 /* htons(ETH_P_ALL) */, 0, 0, 0);
  if (s < 0) die("cannot open a packet socket");
  struct { char name[16]; union { int index; u8 mac[16]; } u; u8 pad[8]; } ifr = {{'e', 't', 'h', '0'}};
  if (sys6(SYS_ioctl, s, 0x8927 /* SIOCGIFHWADDR */, (long)&ifr, 0, 0, 0) < 0) die("no eth0");
  for (int i = 0; i < 6; i++) me[i] = ifr.u.mac[2 + i];
  if (sys6(SYS_ioctl, s, 0x8933 /* SIOCGIFINDEX */, (long)&ifr, 0, 0, 0) < 0) die("no eth0 index");
  struct { u16 family; u16 proto; int ifindex; u16 hatype; u8 pkttype; u8 halen; u8 addr[8]; } ll = {17, 0x0300, ifr.u.index, 0, 0, 6, {0}};
  for (int i = 0; i < 6; i++) ll.addr[i] = gw[i];

  u64 sent = 0;
  for (int k = 0; k < 3000; k++) {
    int len;
    int kind = (int)(rnd() % 4);
    if (kind == 0) { /* random bytes, random length */
      len = 14 + (int)(rnd() % 1501);
      for (int i = 0; i < len; i++) frame[i] = (u8)rnd();
    } else if (kind == 1) { /* truncated or garbage ARP */
      len = 14 + (int)(rnd() % 28);
      for (int i = 14; i < len; i++) frame[i] = (u8)rnd();
      frame[12] = 0x08; frame[13] = 0x06;
    } else {
      len = ipv4((int)rnd());
      if (rnd() % 4 == 0) len = 14 + (int)(rnd() % (u32)(len - 13)); /* cut short */
    }
    for (int i = 0; i < 6; i++) { frame[i] = gw[i]; frame[6 + i] = me[i]; }
    if (sys6(SYS_sendto, s, (long)frame, len, 0, (long)&ll, sizeof ll) == len) sent++;
  }
  out("netfuzz sent ");
  out_num(sent);
  out(" frames\n");
  sys6(SYS_exit, 0, 0, 0, 0, 0, 0);
  return 0;
}
