#!/usr/bin/env bash
# The root filesystem the lab's systemd hosts boot, and the local apt
# repository they install packages from (the hosts have no internet).
# Built once and cached in $DEPLOY_LAB_CACHE (default /var/cache/deploy-lab);
# every host boots its own overlay of it, so hosts start fresh and never
# share state. Safe to run in parallel: one builder, the others wait.
#
#   systemd-rootfs.sh          build what is missing, print the cache dir
set -euo pipefail

cache=${DEPLOY_LAB_CACHE:-/var/cache/deploy-lab}
# bump when what goes into the root filesystem changes: a stale cache is rebuilt
version=3
root=$cache/bookworm
repo=$cache/apt
die() { echo "lab: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
mkdir -p "$cache"

need_packages() {
  local missing=()
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v apt-ftparchive >/dev/null || missing+=(apt-utils)
  command -v dpkg-deb >/dev/null || missing+=(dpkg)
  local sd
  # systemd-container at exactly the machine's systemd version: a newer one
  # would upgrade the machine's systemd and libsystemd0 with it
  if ! command -v systemd-nspawn >/dev/null; then
    sd=$(dpkg-query -W -f='${Version}' systemd)
    missing+=("systemd-container=$sd")
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    echo "lab: installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # without recommends: libnss-mymachines would edit the machine's nsswitch.conf
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

mirror() {
  # the Debian mirror this machine already uses (deb822 or one-line sources)
  local m
  m=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
  [ -n "$m" ] || m=$(grep -h '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
    | awk '{print $2}' | grep -v security | head -n1 || true)
  echo "${m:-http://deb.debian.org/debian}"
}

build_root() {
  [ "$(cat "$root/.deploy-lab-ready" 2>/dev/null)" = "$version" ] && return 0
  rm -rf "$root.tmp" "$root"
  echo "lab: debootstrap of the systemd hosts' root filesystem (about a minute, once)" >&2
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,openssh-server,iproute2,libpam-systemd,nftables,procps,netbase,python3,python3-apt,cron \
    bookworm "$root.tmp" "$(mirror)" >"$cache/debootstrap.log" 2>&1 \
    || die "debootstrap failed: see $cache/debootstrap.log"
  # per-host identity is made at boot: no host keys, no machine-id here
  rm -f "$root.tmp"/etc/ssh/ssh_host_*
  : >"$root.tmp/etc/machine-id"
  # nothing a container cannot do, nothing that waits for hardware
  chroot "$root.tmp" systemctl mask -q systemd-udevd.service systemd-udev-trigger.service \
    getty@tty1.service console-getty.service systemd-networkd-wait-online.service 2>/dev/null || true
  # the local repository, mounted at /srv/lab-apt by the host's boot
  echo 'deb [trusted=yes] file:/srv/lab-apt ./' >"$root.tmp/etc/apt/sources.list"
  rm -f "$root.tmp"/etc/apt/sources.list.d/*
  rm -rf "$root.tmp"/var/lib/apt/lists/* "$root.tmp"/var/cache/apt/archives/*.deb
  mkdir -p "$root.tmp/srv/lab-apt"
  # the index read now, as `apt-get update` on a real host would have
  mount --bind "$repo" "$root.tmp/srv/lab-apt"
  chroot "$root.tmp" apt-get update -qq >/dev/null 2>&1 || { umount "$root.tmp/srv/lab-apt"; die "apt-get update from the lab repository failed"; }
  umount "$root.tmp/srv/lab-apt"
  echo "$version" >"$root.tmp/.deploy-lab-ready"
  mv "$root.tmp" "$root"
}

# a tiny package of our own at two versions, for upgrade and downgrade
lab_deb() {
  local name=$1 ver=$2 d
  d=$(mktemp -d)
  mkdir -p "$d/DEBIAN" "$d/usr/bin"
  cat >"$d/DEBIAN/control" <<EOF
Package: $name
Version: $ver
Architecture: all
Maintainer: deploy lab <lab@invalid>
Description: deploy lab test package
 Prints its version.
EOF
  printf '#!/bin/sh\necho "%s %s"\n' "$name" "$ver" >"$d/usr/bin/$name"
  chmod 0755 "$d/usr/bin/$name"
  dpkg-deb --root-owner-group -b "$d" "$repo.tmp/${name}_${ver}_all.deb" >/dev/null
  rm -rf "$d"
}

build_repo() {
  [ -f "$repo/Packages" ] && return 0
  rm -rf "$repo.tmp"; mkdir -p "$repo.tmp"
  # real packages from the archive, as small as they come and without dependencies
  # beyond a minimal system: busybox (the example's web server) and hello
  (cd "$repo.tmp" && apt-get download busybox hello >/dev/null 2>"$cache/apt-download.log") \
    || die "apt-get download failed: see $cache/apt-download.log"
  lab_deb lab-tool 1.0
  lab_deb lab-tool 2.0
  (cd "$repo.tmp" && apt-ftparchive packages . >Packages 2>/dev/null)
  mv "$repo.tmp" "$repo"
}

need_packages
exec 9>"$cache/.build.lock"
flock -w 600 9 || die "timed out after 600s waiting for another build of $cache"
build_repo
build_root
echo "$cache"
