// The default guest's initramfs: busybox, an /init script, a few config files
// and the kernel modules for virtio devices and ext4.

import { gzipSync, constants as zc } from 'node:zlib';
import { type CpioEntry, withParents, writeCpio } from './cpio.js';
import type { SelectedModule } from './modules.js';

/** Modules the guest needs (the initramfs carries them and their dependencies). */
export const GUEST_MODULES = [
  'virtio_mmio',
  'virtio_blk',
  'virtio_net',
  'virtio_console',
  'virtio_rng',
  'virtio_balloon',
  'virtio_input',
  'evdev',
  'ext4',
];

/** The name the machine's buttons (virtio-input) report; /sbin/tsvisor-buttons looks for it. */
export const BUTTONS_DEVICE_NAME = 'tsvisor buttons';

/**
 * The default guest's handler of the machine's buttons: the power button powers
 * off, the restart key (KEY_RESTART) reboots, as systemd-logind does on a
 * Debian root disk. It reads struct input_event from evdev (24 bytes on
 * 64-bit: a 16-byte time, then type u16, code u16, value s32) and acts on a
 * key press (value 1). "tsvisor.buttons=off" on the command line disables it.
 */
export const BUTTONS_SCRIPT = `#!/bin/busybox sh
dev=
i=0
# The device node may come a moment after the module has loaded.
while [ -z "$dev" ] && [ $i -lt 50 ]; do
  for d in /sys/class/input/event*; do
    [ "$(cat "$d/device/name" 2>/dev/null)" = "${BUTTONS_DEVICE_NAME}" ] && [ -c "/dev/input/\${d##*/}" ] && dev="/dev/input/\${d##*/}"
  done
  [ -n "$dev" ] || sleep 0.1
  i=$((i + 1))
done
[ -n "$dev" ] || exit 0
exec 3<"$dev"
while ev=$(dd bs=24 count=1 <&3 2>/dev/null | od -An -v -tu2 -j16 -N8) && [ -n "$ev" ]; do
  set -- $ev
  [ "$1 $3 $4" = "1 1 0" ] || continue
  case "$2" in
    116) echo "tsvisor guest: power button pressed, powering off" >/dev/console; exec /sbin/poweroff ;;
    408) echo "tsvisor guest: restart key pressed, rebooting" >/dev/console; exec /sbin/reboot ;;
  esac
done
`;

export const READY_LINE = 'tsvisor guest ready';

/** The /init script. `modules` are the names to modprobe; the insmod fallback list is /etc/tsvisor-modules. */
export function initScript(modules: string[]): string {
  return `#!/bin/busybox sh
# tsvisor default guest: minimal init
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
BB=/bin/busybox
$BB mkdir -p /proc /sys /dev /tmp /run /root /sbin /usr/bin /usr/sbin
$BB mount -t proc proc /proc 2>/dev/null
$BB mount -t sysfs sysfs /sys 2>/dev/null
$BB mount -t devtmpfs devtmpfs /dev 2>/dev/null || $BB mount -t tmpfs -o mode=0755 tmpfs /dev 2>/dev/null
$BB --install -s 2>/dev/null
[ -c /dev/console ] || mknod -m 600 /dev/console c 5 1 2>/dev/null
[ -c /dev/null ] || mknod -m 666 /dev/null c 1 3 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts 2>/dev/null
hostname tsvisor 2>/dev/null

# Kernel modules: never fatal. modprobe first; if anything failed, insmod the
# whole list in dependency order (errors such as "already loaded" are ignored).
MODDIR=/lib/modules/$(uname -r)
failed=
for m in ${modules.join(' ')}; do
  modprobe -q "$m" >/dev/null 2>&1 || failed=1
done
if [ -n "$failed" ] && [ -f /etc/tsvisor-modules ]; then
  while read -r f; do
    [ -n "$f" ] && insmod "$MODDIR/$f" >/dev/null 2>&1
  done < /etc/tsvisor-modules
fi

# With console=hvc0 there was no console when the kernel started /init (hvc0
# comes with virtio_mmio, a module): take it now, so what /init and the
# shells print is seen. Tested in a subshell: a failed redirection of exec
# would end this shell, and with it the machine.
if (: </dev/console) 2>/dev/null; then exec </dev/console >/dev/console 2>&1; fi

# root=DEV (e.g. root=/dev/vda): switch to the root file system on that disk and
# run its init (init=PATH, default /sbin/init), as an initramfs of a distribution
# does. Mounted read-only unless "rw" is given, like the kernel's own default.
ROOT=; RINIT=/sbin/init; RFLAGS=ro; RFSTYPE=
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    root=*) ROOT="\${arg#root=}" ;;
    init=*) RINIT="\${arg#init=}" ;;
    rootfstype=*) RFSTYPE="\${arg#rootfstype=}" ;;
    rw) RFLAGS=rw ;;
    ro) RFLAGS=ro ;;
  esac
done
if [ -n "$ROOT" ]; then
  i=0
  while [ ! -b "$ROOT" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  mkdir -p /newroot
  if mount -o "$RFLAGS" \${RFSTYPE:+-t "$RFSTYPE"} "$ROOT" /newroot 2>/dev/null; then
    if [ -x "/newroot$RINIT" ] || [ -L "/newroot$RINIT" ]; then
      echo "tsvisor guest: switching to $ROOT"
      mount --move /dev /newroot/dev 2>/dev/null || mount -t devtmpfs devtmpfs /newroot/dev 2>/dev/null
      umount /dev/pts /proc /sys 2>/dev/null
      exec switch_root /newroot "$RINIT"
    fi
    echo "tsvisor guest: $RINIT not found on $ROOT; staying in the initramfs"
    umount /newroot
  else
    echo "tsvisor guest: cannot mount $ROOT; staying in the initramfs"
  fi
fi

# Network: loopback, and eth0 by DHCP in the background (as a cloud image does);
# "tsvisor.dhcp=off" on the command line leaves eth0 unconfigured (static setups).
ip link set lo up 2>/dev/null
if [ -d /sys/class/net/eth0 ]; then
  ip link set eth0 up 2>/dev/null
  case " $(cat /proc/cmdline) " in
    *" tsvisor.dhcp=off "*) ;;
    *) (udhcpc -i eth0 -f -q -n -t 5 -T 2 -s /usr/share/udhcpc/default.script >/dev/null 2>&1 &) ;;
  esac
fi

echo "${READY_LINE}"

# busybox poweroff, halt and reboot signal init (USR2, USR1, TERM), and a shell
# as PID 1 acts on signals only between commands. So they become small scripts
# that end the machine themselves (after a sync), and the console shell can run
# in the foreground: a command started with & (as it was before) would run with
# SIGINT and SIGQUIT ignored, and so would everything started from that shell,
# so Ctrl-C could not stop anything.
for c in poweroff halt reboot; do
  rm -f "/sbin/$c"
  printf '#!/bin/busybox sh\nsync\nexec /bin/busybox %s -f "$@"\n' "$c" > "/sbin/$c"
  chmod 755 "/sbin/$c"
done

# The machine's buttons (graceful shutdown and reboot from the host), unless
# "tsvisor.buttons=off" is on the command line.
case " $(cat /proc/cmdline) " in
  *" tsvisor.buttons=off "*) ;;
  *) /sbin/tsvisor-buttons </dev/null >/dev/null 2>&1 & ;;
esac

# A signal from busybox's own poweroff, halt or reboot (a script calling them)
# is acted on once the console shell has ended.
trap 'sync; poweroff -f' USR1 USR2
trap 'sync; reboot -f' TERM

# An interactive shell on the console, with job control (a controlling tty).
cd /root 2>/dev/null
if setsid cttyhack true >/dev/null 2>&1; then
  setsid cttyhack sh -l
else
  tty=$(sed 's/.* //' /sys/class/tty/console/active 2>/dev/null)
  [ -n "$tty" ] && [ -c "/dev/$tty" ] || tty=console
  setsid sh -c "exec sh -l </dev/$tty >/dev/$tty 2>&1"
fi

echo "tsvisor guest: shell exited, powering off"
sync
poweroff -f
echo o > /proc/sysrq-trigger 2>/dev/null
while :; do sleep 3600; done
`;
}

/** busybox udhcpc runs this with the lease in its environment ($1 = what happened). */
export const UDHCPC_SCRIPT = `#!/bin/sh
case "$1" in
  deconfig)
    ip addr flush dev "$interface" 2>/dev/null
    ip link set "$interface" up
    ;;
  bound|renew)
    ip addr flush dev "$interface" 2>/dev/null
    ip addr add "$ip/\${mask:-24}" \${broadcast:+broadcast "$broadcast"} dev "$interface"
    for r in $router; do ip route add default via "$r" dev "$interface" 2>/dev/null; break; done
    : > /etc/resolv.conf
    [ -n "$domain" ] && echo "search $domain" >> /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    [ "$1" = bound ] && echo "tsvisor guest: $interface $ip/\${mask:-24} via \${router:-none}" > /dev/console
    ;;
esac
exit 0
`;

export const PROFILE = `export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
export TERM=\${TERM:-vt100}
PS1='\\w \\$ '
export PS1
# This busybox runs its own applets inside the shell, and its poweroff, halt
# and reboot signal init, which acts only once the console shell has ended
# (see /init): these run the scripts in /sbin that end the machine at once.
poweroff() { /sbin/poweroff "$@"; }
halt() { /sbin/halt "$@"; }
reboot() { /sbin/reboot "$@"; }
`;

export interface InitramfsInput {
  busybox: Uint8Array;
  kernelVersion: string;
  modules: SelectedModule[];
  /** Names /init modprobes. */
  loadNames: string[];
  modulesDep: string;
  modulesAlias: string;
}

const enc = new TextEncoder();

/** The list of cpio entries (parents included). */
export function initramfsEntries(inp: InitramfsInput): CpioEntry[] {
  const mdir = `lib/modules/${inp.kernelVersion}`;
  const file = (path: string, data: string | Uint8Array, mode = 0o644): CpioEntry => ({
    path,
    type: 'file',
    mode,
    data: typeof data === 'string' ? enc.encode(data) : data,
  });
  const dir = (path: string, mode = 0o755): CpioEntry => ({ path, type: 'dir', mode });
  const entries: CpioEntry[] = [
    dir('bin'),
    dir('sbin'),
    dir('usr'),
    dir('usr/bin'),
    dir('usr/sbin'),
    dir('dev'),
    { path: 'dev/console', type: 'char', mode: 0o600, major: 5, minor: 1 },
    dir('proc'),
    dir('sys'),
    dir('run'),
    dir('tmp', 0o1777),
    dir('root', 0o700),
    dir('etc'),
    dir('lib'),
    dir('lib/modules'),
    dir(mdir),
    file('bin/busybox', inp.busybox, 0o755),
    { path: 'bin/sh', type: 'symlink', target: 'busybox' },
    file('init', initScript(inp.loadNames), 0o755),
    file('etc/profile', PROFILE),
    file('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n'),
    file('etc/group', 'root:x:0:\n'),
    file('etc/hostname', 'tsvisor\n'),
    file('etc/hosts', '127.0.0.1 localhost\n'),
    file('usr/share/udhcpc/default.script', UDHCPC_SCRIPT, 0o755),
    file('sbin/tsvisor-buttons', BUTTONS_SCRIPT, 0o755),
    file('etc/tsvisor-modules', inp.modules.map((m) => m.path).join('\n') + '\n'),
    file(`${mdir}/modules.dep`, inp.modulesDep),
    file(`${mdir}/modules.alias`, inp.modulesAlias),
  ];
  for (const m of inp.modules) entries.push(file(`${mdir}/${m.path}`, m.data));
  return withParents(entries);
}

/** Builds the gzip-compressed newc initramfs. */
export function buildInitramfs(inp: InitramfsInput): Buffer {
  const cpio = writeCpio(initramfsEntries(inp));
  return gzipSync(cpio, { level: zc.Z_BEST_COMPRESSION });
}
