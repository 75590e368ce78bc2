#!/usr/bin/env bash
# The lab: N Debian "hosts" on this machine, each a network namespace with its own
# address, its own sshd, its own nftables and a private mount namespace in which
# /etc, /opt, /srv, /var/lib/deploy and root's home (from /etc/skel) are
# per-host directories.
#
#   lab.sh up   [--dir DIR] [--instance K] [--hosts N] [--docker] [--compose-v1 HOSTS]
#               [--locale HOST=LOCALE ...] [--systemd-hosts M]
#   lab.sh down [--dir DIR]
#   lab.sh kill-sshd HOST | start-sshd HOST | rekey HOST | tmpfs HOST PATH SIZE
#                                       (used by failure tests)
#
# Instance K owns the subnet 10.231.K.0/24, the bridge dlabK and the namespaces
# dlK-labI; `make lab-up` is instance 0 in .lab/, each test takes its own instance
# so tests never share hosts.
#
# --systemd-hosts M adds hosts sys1..sysM that boot systemd as PID 1 under
# systemd-nspawn, each on its own overlay of a debootstrapped bookworm
# (tests/lab/systemd-rootfs.sh builds it once), with a local apt repository. Everything up creates is recorded in DIR, and down
# removes exactly that, stopping only processes it started (by pid file).
set -euo pipefail

cmd=${1:-}; shift || true
dir=.lab; instance=0; hosts=3; sd_hosts=0; docker=no; v1_hosts=""; atd=no; locales=""
while [ $# -gt 0 ]; do
  case $1 in
    --docker) docker=yes; shift;;
    # an atd per host (its own spool and /run), for the `at` dead-man timer
    --atd) atd=yes; shift;;
    # hosts (comma-separated) that only have Compose v1 (docker-compose)
    --compose-v1) v1_hosts=",$2,"; docker=yes; shift 2;;
    # a host installed in another language: LANG in /etc/default/locale,
    # loaded into every SSH session by PAM (UsePAM yes, Debian's default)
    --locale) locales="$locales $2"; shift 2;;
    --dir) dir=$2; shift 2;;
    --instance) instance=$2; shift 2;;
    --hosts) hosts=$2; shift 2;;
    --systemd-hosts) sd_hosts=$2; shift 2;;
    *) break;;
  esac
done

die() { echo "lab: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (network and mount namespaces)"

need_packages() {
  local missing=()
  command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
  command -v ssh >/dev/null || missing+=(openssh-client)
  command -v nft >/dev/null || [ -x /usr/sbin/nft ] || missing+=(nftables)
  command -v ip >/dev/null || [ -x /usr/sbin/ip ] || missing+=(iproute2)
  command -v nsenter >/dev/null || missing+=(util-linux)
  command -v pgrep >/dev/null || missing+=(procps)
  if [ "$atd" = yes ]; then command -v atd >/dev/null || missing+=(at); fi
  if [ "$docker" = yes ]; then
    command -v dockerd >/dev/null || missing+=(docker.io)
    [ -x /usr/bin/docker-compose ] || missing+=(docker-compose)
    { [ -x /bin/busybox ] && /bin/busybox --list | grep -x httpd >/dev/null; } || missing+=(busybox-static)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    echo "lab: installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if [ "$docker" = yes ]; then
    bash "$(dirname "$0")/compose-v2.sh" >/dev/null
  fi
}

# wait_for DESCRIPTION TIMEOUT_S COMMAND...: poll state, never sleep blindly
wait_for() {
  local what=$1 limit=$2; shift 2
  local deadline=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || die "timed out after ${limit}s waiting for $what"
    sleep 0.05
  done
}

ns_name() { echo "dl${instance}-$1"; }

start_sshd() {
  local h=$1 hd=$dir/hosts/$1
  local ns; ns=$(cat "$hd/netns")
  local addr; addr=$(cat "$hd/addr")
  # sshd writes its pid inside the host's /etc (so that an on_change reload
  # finds it there); $hd/sshd.pid points at it for this script
  rm -f "$hd/root/etc/ssh/lab-sshd.pid"
  ln -sfn root/etc/ssh/lab-sshd.pid "$hd/sshd.pid"
  # unshare gives the sshd (and every session it forks) a private mount namespace;
  # nsenter --net rather than `ip netns exec`, which remounts /sys (see LAB-NOTES).
  nsenter --net="/var/run/netns/$ns" unshare --mount --propagation private sh -c '
    set -e
    hd=$1
    for p in etc opt srv var/lib/deploy; do mount --bind "$hd/root/$p" "/$p"; done
    if [ -d "$hd/root/var/lib/docker" ]; then
      # a Docker engine of its own: data, containerd state and /run (its socket
      # at the usual /var/run/docker.sock) private to this host
      mount --bind "$hd/root/var/lib/docker" /var/lib/docker
      mount --bind "$hd/root/var/lib/containerd" /var/lib/containerd
      mount -t tmpfs -o mode=0755 tmpfs /run
      if [ -f "$hd/compose-v1-only" ]; then
        mount -t tmpfs tmpfs /usr/libexec/docker/cli-plugins
      fi
    fi
    if [ -d "$hd/root/var/spool/cron" ]; then
      mount --bind "$hd/root/var/spool/cron" /var/spool/cron
      mountpoint -q /run || mount -t tmpfs -o mode=0755 tmpfs /run
      rm -f /var/spool/cron/atjobs/.SEQ.lock
      atd
    fi
    mkdir -p /run/sshd
    # last: its own root home, made from /etc/skel as on a fresh VPS (the
    # machine'"'"'s /root, whose .bashrc may run pyenv, stays out of every
    # session); a mount over /root would hide a lab directory under it
    case $hd in
      /root/*) echo "lab: $hd is under /root: the host shares the machine'"'"'s root home" >&2;;
      *) mount --bind "$hd/root/root" /root;;
    esac
    exec /usr/sbin/sshd -f /etc/ssh/sshd_config -E "$hd/sshd.log"
  ' sh "$(realpath "$hd")"
  wait_for "sshd of $h to write its pid file" 10 test -s "$hd/sshd.pid"
  # on whatever port its config gives (the hardening role may have moved it)
  wait_for "sshd of $h to listen" 10 \
    nsenter --net="/var/run/netns/$ns" sh -c "ss -ltnp | grep -q \"pid=\$(cat '$hd/sshd.pid'),\""
}

start_dockerd() {
  local h=$1 hd=$dir/hosts/$1
  local pid; pid=$(cat "$hd/sshd.pid")
  rm -f "$hd/docker.sock" "$hd/dockerd.pid"
  # in the host's network and mount namespaces; a second socket in the lab dir
  # lets this script reach the engine from outside
  nsenter -t "$pid" -n -m -- setsid dockerd \
    -H unix:///run/docker.sock -H "unix://$hd/docker.sock" \
    --pidfile "$hd/dockerd.pid" --bridge none --iptables=false --ip6tables=false --ip-masq=false \
    --default-address-pool base=10.232.0.0/16,size=24 \
    --cgroup-parent "/deploy-lab$instance-$h" --storage-driver overlay2 --shutdown-timeout 2 \
    </dev/null >"$hd/dockerd.log" 2>&1 &
  wait_for "the Docker engine of $h to answer" 60 docker -H "unix://$hd/docker.sock" version
  if ! docker -H "unix://$hd/docker.sock" image inspect lab/busybox:1 >/dev/null 2>&1; then
    docker -H "unix://$hd/docker.sock" import \
      --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' "$dir/busybox-rootfs.tar" lab/busybox:1 >/dev/null
  fi
}

stop_dockerd() {
  local hd=$dir/hosts/$1
  if [ -s "$hd/dockerd.pid" ]; then
    local pid; pid=$(cat "$hd/dockerd.pid")
    if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q dockerd; then
      # remove containers first: PID 1 of a container may ignore SIGTERM
      docker -H "unix://$hd/docker.sock" ps -aq 2>/dev/null | xargs -r docker -H "unix://$hd/docker.sock" rm -f >/dev/null 2>&1 || true
      kill "$pid" 2>/dev/null || true
      wait_for "dockerd of $1 (pid $pid) to exit" 30 sh -c "! kill -0 $pid"
    fi
    rm -f "$hd/dockerd.pid"
  fi
}

# A rootfs with busybox and its applets: the lab's only image, imported into
# each engine (no registry can be reached).
busybox_rootfs() {
  [ -f "$dir/busybox-rootfs.tar" ] && return 0
  local r; r=$(mktemp -d)
  mkdir -p "$r/bin" "$r/tmp" "$r/www" "$r/etc"
  cp /bin/busybox "$r/bin/busybox"
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$r/bin/$a"; done
  echo 'root:x:0:0:root:/:/bin/sh' >"$r/etc/passwd"
  echo 'root:x:0:' >"$r/etc/group"
  tar -C "$r" -cf "$dir/busybox-rootfs.tar" .
  rm -rf "$r"
}

stop_sshd() {
  local hd=$dir/hosts/$1
  if [ -s "$hd/sshd.pid" ]; then
    local pid; pid=$(cat "$hd/sshd.pid")
    # only the process we started: check it is still an sshd before killing
    if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q sshd; then
      kill "$pid" 2>/dev/null || true
      wait_for "sshd of $1 (pid $pid) to exit" 10 sh -c "! kill -0 $pid"
    fi
    rm -f "$hd/sshd.pid"
  fi
}

# set_locale HOSTDIR LOCALE: the host speaks LOCALE in every SSH session,
# as a Debian server installed in that language does
set_locale() {
  local hd=$1 loc=$2
  if ! locale -a 2>/dev/null | grep -qix "$(echo "$loc" | sed 's/UTF-8/utf8/')"; then
    localedef -i "${loc%%.*}" -f UTF-8 "$loc"
  fi
  printf 'LANG=%s\n' "$loc" >"$hd/root/etc/default/locale"
  sed -i 's/^UsePAM no$/UsePAM yes/' "$hd/root/etc/ssh/sshd_config.d/00-lab.conf"
}

# A host booting systemd: its own overlay of the cached root filesystem,
# its network namespace, a cgroup subtree of its own (nspawn puts its
# supervisor/ and payload/ under the cgroup it starts in).
start_systemd_host() {
  local h=$1 hd=$dir/hosts/$1 cache=$2
  local ns; ns=$(cat "$hd/netns")
  mkdir -p "$hd/upper" "$hd/work" "$hd/root"
  mountpoint -q "$hd/root" || mount -t overlay overlay \
    -o "lowerdir=$cache/bookworm,upperdir=$hd/upper,workdir=$hd/work" "$hd/root"
  if [ ! -s "$hd/root/etc/machine-id" ]; then
    # first boot: this host's identity, as an installer would make it
    { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; echo; } >"$hd/root/etc/machine-id"
    echo "$h" >"$hd/root/etc/hostname"
    host_keys "$hd"
    install -d -m 0700 "$hd/root/root/.ssh"
    install -m 0600 "$dir/id_ed25519.pub" "$hd/root/root/.ssh/authorized_keys"
    cat >"$hd/root/etc/ssh/sshd_config.d/00-lab.conf" <<EOF
# lab host $h: written by tests/lab/lab.sh
HostKey /etc/ssh/ssh_host_ed25519_key
LogLevel VERBOSE
MaxSessions 64
MaxStartups 200:30:400
EOF
  fi
  rm -f "$hd/nspawn.pid"
  # shellcheck disable=SC2016 # expanded by the inner bash
  setsid bash -c '
    for c in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd /sys/fs/cgroup; do
      [ -f "$c/cgroup.procs" ] || continue
      mkdir -p "$c/$1" && echo $$ >"$c/$1/cgroup.procs"
      [ "$c" = /sys/fs/cgroup ] && break
    done
    echo $$ >"$2/nspawn.pid"
    # /proc/sys/net writable (the host has its own network namespace): sysctl
    # values of the network stack can be set, as on a VPS
    SYSTEMD_NSPAWN_API_VFS_WRITABLE=network exec systemd-nspawn -q -D "$2/root" -b -M "$1" --keep-unit --register=no \
      --network-namespace-path="/run/netns/$1" --console=read-only \
      --bind-ro="$3/apt:/srv/lab-apt" --capability=CAP_NET_ADMIN
  ' nspawn "$ns" "$hd" "$cache" </dev/null >"$hd/console.log" 2>&1 &
  local addr; addr=$(cat "$hd/addr")
  local opts=(-i "$dir/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no
              -o UserKnownHostsFile=/dev/null -o ConnectTimeout=2 -o LogLevel=ERROR)
  # booted: sshd answers and systemd says the boot is over
  wait_for "$h (systemd-nspawn) to answer ssh" 60 ssh "${opts[@]}" "root@$addr" true
  local st
  st=$(timeout 60 ssh "${opts[@]}" "root@$addr" 'systemctl is-system-running --wait' 2>/dev/null || true)
  [ "$st" = running ] || die "$h booted into state '${st:-no answer}' (see $hd/console.log)"
}

stop_systemd_host() {
  local h=$1 hd=$dir/hosts/$1
  local machine; machine=$(cat "$hd/netns")
  if [ -s "$hd/nspawn.pid" ]; then
    local pid; pid=$(cat "$hd/nspawn.pid")
    if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q systemd-nspawn; then
      kill "$pid" 2>/dev/null || true
      if ! (wait_for "$h (nspawn pid $pid) to shut down" 20 sh -c "! kill -0 $pid"); then
        kill -9 "$pid" 2>/dev/null || true
      fi
    fi
    rm -f "$hd/nspawn.pid"
  fi
  for c in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd /sys/fs/cgroup; do
    [ -d "$c/$machine" ] || continue
    # processes left in the subtree (a killed nspawn's payload) go first
    for p in $(find "$c/$machine" -name cgroup.procs -exec cat {} + 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    find "$c/$machine" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  if mountpoint -q "$hd/root"; then
    umount "$hd/root" 2>/dev/null || umount -l "$hd/root"
  fi
}

host_keys() {
  local hd=$1
  rm -f "$hd/root/etc/ssh/ssh_host_"*
  ssh-keygen -q -t ed25519 -N '' -C "$(basename "$hd")" -f "$hd/root/etc/ssh/ssh_host_ed25519_key"
}

write_known_hosts() {
  : >"$dir/known_hosts.tmp"
  for hd in "$dir"/hosts/*/; do
    local h; h=$(basename "$hd")
    printf '%s,%s %s\n' "$h" "$(cat "$hd/addr")" \
      "$(cut -d' ' -f1,2 "$hd/root/etc/ssh/ssh_host_ed25519_key.pub")" >>"$dir/known_hosts.tmp"
  done
  mv "$dir/known_hosts.tmp" "$dir/known_hosts"
}

# netns_up HOST VETH ADDR VPN_ADDR: the host's network namespace, on the bridge
netns_up() {
  local h=$1 veth=$2 addr=$3 vaddr=$4 hd=$dir/hosts/$1 ns; ns=$(ns_name "$1")
  local net=10.231.$instance br=dlab$instance
  mkdir -p "$hd"
  echo "$ns" >"$hd/netns"; echo "$addr" >"$hd/addr"; echo "$vaddr" >"$hd/vpn_addr"
  if ip netns list | grep -qw "$ns" && [ ! -s "$hd/sshd.pid" ] && [ ! -s "$hd/nspawn.pid" ]; then
    # left over from a run that died without `down`: not ours to reuse
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    ip netns del "$ns"
    ip link del "$veth" 2>/dev/null || true
  fi
  if ! ip netns list | grep -qw "$ns"; then
    # a veth of a namespace deleted a moment ago goes away asynchronously
    ip link del "$veth" 2>/dev/null || true
    wait_for "the old veth $veth to go" 10 sh -c "! ip link show $veth"
    ip netns add "$ns"
    ip link add "$veth" type veth peer name eth0 netns "$ns"
    ip link set "$veth" master "$br" up
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" addr add "$vaddr/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    ip -n "$ns" route add default via "$net.1"
  fi
}

up() {
  need_packages
  mkdir -p "$dir/hosts" /opt /srv /var/lib/deploy  # mount points for the per-host binds
  dir=$(realpath "$dir")
  local net=10.231.$instance vpn=100.64.$instance br=dlab$instance
  echo "$instance" >"$dir/instance"
  [ -f "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C deploy-lab -f "$dir/id_ed25519"

  if ! ip link show "$br" >/dev/null 2>&1; then
    ip link add "$br" type bridge
    echo "$br" >"$dir/bridge"
  fi
  ip addr replace "$net.1/24" dev "$br"
  # the controller is also a client in the VPN range (100.64.0.0/10), so tests
  # reach each host through its VPN address as well as from outside that range
  ip addr replace "$vpn.1/24" dev "$br"
  ip link set "$br" up

  for i in $(seq 1 "$hosts"); do
    local h=lab$i hd=$dir/hosts/lab$i addr=$net.$((10 + i))
    netns_up "$h" "v$instance-$i" "$addr" "$vpn.$((10 + i))"
    if [ "$docker" = yes ] && [ ! -d "$hd/root/var/lib/docker" ]; then
      mkdir -p "$hd/root/var/lib/docker" "$hd/root/var/lib/containerd" /var/lib/docker /var/lib/containerd
      case $v1_hosts in *",$h,"*) touch "$hd/compose-v1-only";; esac
    fi
    if [ "$atd" = yes ] && [ ! -d "$hd/root/var/spool/cron" ]; then
      mkdir -p "$hd/root/var/spool/cron/atjobs" "$hd/root/var/spool/cron/atspool"
      chown daemon:daemon "$hd/root/var/spool/cron/atjobs" "$hd/root/var/spool/cron/atspool"
      chmod 1770 "$hd/root/var/spool/cron/atjobs" "$hd/root/var/spool/cron/atspool"
      # at's job sequence file, as the package creates it
      : >"$hd/root/var/spool/cron/atjobs/.SEQ"
      chown daemon:daemon "$hd/root/var/spool/cron/atjobs/.SEQ"; chmod 0600 "$hd/root/var/spool/cron/atjobs/.SEQ"
    fi
    if [ ! -d "$hd/root/etc" ]; then
      mkdir -p "$hd/root/opt" "$hd/root/srv" "$hd/root/var/lib/deploy" "$hd/root/root"
      cp -a /etc/skel/. "$hd/root/root/"; chmod 0700 "$hd/root/root"
      cp -a /etc "$hd/root/etc"
      rm -f "$hd/root/etc/ssh/sshd_config.d/"*.conf
      host_keys "$hd"
      cp "$dir/id_ed25519.pub" "$hd/root/etc/ssh/lab_authorized_keys"
      # The lab's own settings live in a drop-in, so that the example's
      # hardening role can own sshd_config as it would on a real host.
      cat >"$hd/root/etc/ssh/sshd_config.d/00-lab.conf" <<EOF
# lab host $h: written by tests/lab/lab.sh
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /etc/ssh/lab-sshd.pid
AuthorizedKeysFile /etc/ssh/lab_authorized_keys
UsePAM no
LogLevel VERBOSE
MaxSessions 64
MaxStartups 200:30:400
EOF
      cat >"$hd/root/etc/ssh/sshd_config" <<EOF
# lab host $h ($addr): written by tests/lab/lab.sh
Include /etc/ssh/sshd_config.d/*.conf
Port 22
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
Subsystem sftp internal-sftp
EOF
      echo "$h" >"$hd/root/etc/hostname"
      for hl in $locales; do
        [ "${hl%%=*}" = "$h" ] || continue
        set_locale "$hd" "${hl#*=}"
      done
    fi
    [ -s "$hd/sshd.pid" ] && kill -0 "$(cat "$hd/sshd.pid")" 2>/dev/null || start_sshd "$h"
    if [ -d "$hd/root/var/lib/docker" ]; then
      busybox_rootfs
      [ -s "$hd/dockerd.pid" ] && kill -0 "$(cat "$hd/dockerd.pid")" 2>/dev/null || start_dockerd "$h"
    fi
  done

  if [ "$sd_hosts" -gt 0 ]; then
    local cache; cache=$(bash "$(dirname "$0")/systemd-rootfs.sh")
    for i in $(seq 1 "$sd_hosts"); do
      local h=sys$i hd=$dir/hosts/sys$i
      netns_up "$h" "v$instance-s$i" "$net.$((50 + i))" "$vpn.$((50 + i))"
      [ -s "$hd/nspawn.pid" ] && kill -0 "$(cat "$hd/nspawn.pid")" 2>/dev/null || start_systemd_host "$h" "$cache" &
    done
    # hosts boot in parallel; a failed boot fails the whole lab
    local rc=0
    for _ in $(seq 1 "$sd_hosts"); do wait -n || rc=1; done
    [ "$rc" = 0 ] || die "a systemd host did not boot"
  fi

  write_known_hosts
  {
    echo "# written by tests/lab/lab.sh: ssh -F $dir/ssh_config lab1"
    for hd in "$dir"/hosts/*/; do
      local h; h=$(basename "$hd")
      # $h-vpn: the same host (same key) through its VPN address
      cat <<EOF
Host $h
  HostName $(cat "$hd/addr")
  HostKeyAlias $h
Host $h-vpn
  HostName $(cat "$hd/vpn_addr")
  HostKeyAlias $h
EOF
    done
    # last: ssh takes the first value it finds, so these are every host's defaults
    cat <<EOF
Host *
  User root
  IdentityFile $dir/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $dir/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 5
EOF
  } >"$dir/ssh_config"
  echo "lab: $(ls "$dir/hosts" | wc -l) hosts up in $dir (ssh -F $dir/ssh_config lab1)"
}

down() {
  [ -d "$dir" ] || return 0
  if [ -f "$dir/instance" ]; then instance=$(cat "$dir/instance"); fi
  for hd in "$dir"/hosts/*/; do
    [ -d "$hd" ] || continue
    local h; h=$(basename "$hd")
    if [ -d "$hd/upper" ]; then stop_systemd_host "$h"; fi
    stop_dockerd "$h"
    if [ -d "$hd/root/var/spool/cron" ] && [ -s "$hd/sshd.pid" ]; then
      # atd daemonized inside this host's mount namespace: its pid file is there
      local ap; ap=$(nsenter -t "$(cat "$hd/sshd.pid")" -m cat /run/atd.pid 2>/dev/null || true)
      [ -n "$ap" ] && kill "$ap" 2>/dev/null || true
    fi
    stop_sshd "$h"
    if [ -f "$hd/netns" ]; then
      local ns; ns=$(cat "$hd/netns")
      # leftover processes in this namespace are ones our sshd forked
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
  if [ -f "$dir/bridge" ]; then ip link del "$(cat "$dir/bridge")" 2>/dev/null || true; fi
  rm -rf "$dir"
}

case $cmd in
  up) up;;
  down) down;;
  kill-sshd) stop_sshd "$1";;
  start-sshd) dir=$(realpath "$dir"); instance=$(cat "$dir/instance"); start_sshd "$1";;
  tmpfs)
    # tmpfs HOST PATH SIZE: a small filesystem at PATH inside HOST's mount
    # namespace (to test a full disk)
    pid=$(cat "$dir/hosts/$1/sshd.pid")
    nsenter -t "$pid" -m mount -t tmpfs -o "size=$3" tmpfs "$2";;
  rekey) dir=$(realpath "$dir"); instance=$(cat "$dir/instance"); stop_sshd "$1"; host_keys "$dir/hosts/$1"; start_sshd "$1";;
  *) die "usage: lab.sh up|down|kill-sshd|start-sshd|rekey [--dir DIR] [--instance K] [--hosts N]";;
esac
