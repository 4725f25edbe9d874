#!/usr/bin/env bash
# Check that the README's two commands work on a clean Debian 12 machine:
# debootstrap a bookworm root (minbase, cached), put a clean clone of this
# repository's HEAD into it (no node_modules, no build output), copy the host's
# Node.js and npm into it (Debian 12 ships Node.js 18; tsvisor needs 20+), then
# run `bash scripts/setup.sh` and `npm test` there in a chroot, as root.
#
# Usage: bash scripts/fresh-check.sh [--new-root] [--only NAME...]
#   --new-root   debootstrap the base root again instead of using the cached one
#   --only NAME  after setup.sh, run only test/NAME.test.ts (repeatable) instead of npm test
# Environment:
#   TSVISOR_FRESH_MIRROR        Debian mirror (default: the host's apt sources)
#   TSVISOR_FRESH_TEST_TIMEOUT  seconds allowed for `npm test` (default 5400)
# Cache: ${XDG_CACHE_HOME:-~/.cache}/tsvisor/fresh-root (base tarball, the last
# run's root, logs). Uncommitted changes are not tested: commit first.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/tsvisor/fresh-root"
base="$cache/bookworm-minbase.tar"
run="$cache/run"
target="$run/root"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
log="$cache/logs/fresh-check-$stamp.log"
suite=bookworm
new_root=0
only=()
while [ $# -gt 0 ]; do
  a=$1; shift
  case "$a" in
    --new-root) new_root=1 ;;
    --only) [ $# -gt 0 ] || { echo "fresh-check: --only needs a test name" >&2; exit 2; }; only+=("$1"); shift ;;
    -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fresh-check: unknown argument $a" >&2; exit 2 ;;
  esac
done

die() { echo "fresh-check: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap and chroot)"
for t in debootstrap git tar chroot mount; do
  command -v "$t" >/dev/null || die "$t not found (apt-get install debootstrap git)"
done
command -v node >/dev/null && command -v npm >/dev/null || die "the host needs Node.js 20+ and npm: they are copied into the root"
[ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ] || die "the host's node is $(node --version); 20 or later is needed"

mkdir -p "$cache/logs"
exec > >(tee -a "$log") 2>&1
echo "fresh-check: log $log"

# ---- mounts, and their removal on any exit ---------------------------------
mounted=()
cleanup() {
  local rc=$? p i
  # Processes still running inside the root (started by this run) hold its mounts.
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$target" ] && kill -KILL "${p#/proc/}" 2>/dev/null
  done
  # Mounts the tests made inside the root (ip netns binds run/netns), deepest first.
  awk -v t="$target/" 'index($2, t) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
    case " ${mounted[*]} " in *" $m "*) ;; *) umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null ;; esac
  done
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" 2>/dev/null || echo "fresh-check: could not unmount ${mounted[i]}"
  done
  mounted=()
  return $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
bind() { # bind SRC DEST-inside-root [extra mount options...]
  local dest="$target$2"
  [ -e "$dest" ] || { [ -d "$1" ] && mkdir -p "$dest" || { mkdir -p "$(dirname "$dest")"; : >"$dest"; }; }
  mount --bind "$1" "$dest"
  mounted+=("$dest")
  # Private: mounts made under it (dev/pts, dev/shm) must not show up on the host.
  mount --make-private "$dest"
}

# ---- Debian mirror from the host's apt sources -----------------------------
# apt itself resolves the host's sources (one-line and deb822 files): the first
# `deb` target of a plain release (no -updates/-security suffix) is the archive.
mirror="${TSVISOR_FRESH_MIRROR:-}"
security=""
if [ -z "$mirror" ]; then
  while read -r uri rel; do
    case "$rel" in
      */*|*-security) [ -z "$security" ] && [ "${rel%-security}" = "$suite" ] && security="$uri" ;;
      *-*) ;;
      *) [ -z "$mirror" ] && mirror="$uri" ;;
    esac
  done < <(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Created-By: Packages' 2>/dev/null | sort -u)
fi
[ -n "$mirror" ] || die "no Debian archive in the host's apt sources; set TSVISOR_FRESH_MIRROR"
echo "fresh-check: Debian mirror $mirror${security:+ (security: $security)}"

# ---- base root: debootstrap once, keep a tarball ----------------------------
if [ "$new_root" = 1 ] || [ ! -s "$base" ]; then
  echo "fresh-check: debootstrap $suite (minbase) -> $base"
  tmp="$cache/debootstrap.tmp"
  rm -rf "$tmp"
  debootstrap --variant=minbase "$suite" "$tmp" "$mirror"
  {
    echo "deb $mirror $suite main"
    echo "deb $mirror $suite-updates main"
    [ -n "$security" ] && echo "deb $security $suite-security main"
  } >"$tmp/etc/apt/sources.list"
  tar -C "$tmp" -cf "$base.tmp" .
  mv -f "$base.tmp" "$base"
  rm -rf "$tmp"
fi

# ---- this run's root: base + clean clone + host node -------------------------
if [ -d "$run" ]; then
  grep -q " $run" /proc/mounts && die "something is still mounted under $run; unmount it first"
  rm -rf "$run"
fi
mkdir -p "$target"
tar -C "$target" -xf "$base"
chmod 1777 "$target/tmp"
# What an installed Debian has and debootstrap leaves out: the hosts file (the
# installer writes it; name lookups of localhost need it).
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$target/etc/hosts"

rev="$(git -C "$repo" rev-parse HEAD)"
[ -z "$(git -C "$repo" status --porcelain --untracked-files=no)" ] ||
  echo "fresh-check: note: uncommitted changes in $repo are not part of this check"
git clone -q --no-checkout "$repo" "$target/root/tsvisor"
git -C "$target/root/tsvisor" checkout -q --detach "$rev"
echo "fresh-check: testing commit $(git -C "$repo" log -1 --format='%h %s' "$rev")"

node_bin="$(readlink -f "$(command -v node)")"
npm_dir="$(npm root -g)/npm"
[ -f "$npm_dir/bin/npm-cli.js" ] || die "npm not found at $npm_dir"
install -D -m 755 "$node_bin" "$target/usr/local/bin/node"
mkdir -p "$target/usr/local/lib/node_modules"
cp -a "$npm_dir" "$target/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$target/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$target/usr/local/bin/npx"
# Node's C headers, where an install keeps them (PREFIX/include/node): the native addon needs them.
node_inc="$(dirname "$node_bin")/../include/node"
if [ -f "$node_inc/node_api.h" ]; then
  mkdir -p "$target/usr/local/include"
  cp -a "$(readlink -f "$node_inc")" "$target/usr/local/include/node"
fi

# Site-local network trust travels with the check, so it also works behind a
# TLS-inspecting proxy: locally added CA certificates (picked up when setup.sh
# installs ca-certificates), the global npmrc, NODE_EXTRA_CA_CERTS and proxy
# variables. A plain Debian host has none of these.
if compgen -G "/usr/local/share/ca-certificates/*" >/dev/null; then
  mkdir -p "$target/usr/local/share/ca-certificates"
  cp -a /usr/local/share/ca-certificates/. "$target/usr/local/share/ca-certificates/"
fi
[ -f /etc/npmrc ] && cp /etc/npmrc "$target/etc/npmrc"
pass_env=()
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -r "$NODE_EXTRA_CA_CERTS" ]; then
  install -D -m 644 "$NODE_EXTRA_CA_CERTS" "$target$NODE_EXTRA_CA_CERTS"
  pass_env+=("NODE_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS")
fi
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  [ -n "${!v:-}" ] && pass_env+=("$v=${!v}")
done

# ---- chroot -----------------------------------------------------------------
# The root is a mount point of its own, as / is on a real system (`ip netns`
# remounts / and fails on a plain directory).
mount --bind "$target" "$target" && mounted+=("$target")
mount --make-private "$target"
bind /proc /proc
bind /sys /sys
bind /dev /dev
bind /dev/pts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs "$target/dev/shm" && mounted+=("$target/dev/shm")
bind "$(readlink -f /etc/resolv.conf)" /etc/resolv.conf

in_root() {
  chroot "$target" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    "${pass_env[@]}" bash -c "cd /root/tsvisor && $1" </dev/null
}
echo "fresh-check: node in the root: $(in_root 'node --version'), npm $(in_root 'npm --version')"

results=()
step() { # step NAME COMMAND
  local t0=$SECONDS rc=0
  printf '\n======== fresh-check: %s ========\n' "$1"
  in_root "$2" || rc=$?
  results+=("$(printf '%-28s %s (%ds)' "$1" "$([ $rc -eq 0 ] && echo ok || echo "FAILED, exit $rc")" $((SECONDS - t0)))")
  return $rc
}
ok=1
step "bash scripts/setup.sh" "bash scripts/setup.sh" || ok=0
if [ $ok = 1 ] && [ ${#only[@]} -gt 0 ]; then
  step "tests: ${only[*]}" "timeout --kill-after=30s ${TSVISOR_FRESH_TEST_TIMEOUT:-5400} node scripts/run-tests.mjs ${only[*]}" || ok=0
elif [ $ok = 1 ]; then
  step "npm test" "timeout --kill-after=30s ${TSVISOR_FRESH_TEST_TIMEOUT:-5400} npm test" || ok=0
else
  results+=("npm test                     not run (setup failed)")
fi

printf '\n======== fresh-check summary ========\n'
printf '%s\n' "${results[@]}"
# node's test runner ends with "# tests N", "# pass N", ... lines ("ℹ" for the spec reporter).
grep -E '^(#|ℹ) (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) ' "$log" | tail -n 8 || true
if [ $ok = 1 ]; then echo "fresh-check: PASS"; else echo "fresh-check: FAIL"; fi
echo "fresh-check: log $log"
[ $ok = 1 ]
