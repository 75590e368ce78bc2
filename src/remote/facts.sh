# deploy facts: the host facts Ansible users read most, as `ansible -m
# setup` names and types them, in one round trip. Only run when the
# repository reads a fact.
# output, after the header `deploy-facts 1`, tab-separated:
#   s KEY VALUE          a string fact
#   i KEY NUMBER         an integer fact
#   l KEY VALUE          an item of the list fact KEY (the key alone: empty)
#   d KEY SUB VALUE      a string in the dict fact KEY (the key alone: empty)
#   D KEY SUB NUMBER     an integer in the dict fact KEY
set -u
export LC_ALL=C
tab=$(printf '\t')
printf 'deploy-facts\t1\n'
s() { printf 's\t%s\t%s\n' "$1" "$2"; }
d() { printf 'd\t%s\t%s\t%s\n' "$1" "$2" "$3"; }

# distribution, from os-release and debian_version
ID=""; NAME=""; PRETTY_NAME=""; VERSION_ID=""; VERSION_CODENAME=""; ID_LIKE=""
if [ -r /etc/os-release ]; then
  while IFS='=' read -r k v; do
    v=${v#\"}; v=${v%\"}
    case $k in
      ID) ID=$v;; NAME) NAME=$v;; PRETTY_NAME) PRETTY_NAME=$v;; VERSION_ID) VERSION_ID=$v;;
      VERSION_CODENAME) VERSION_CODENAME=$v;; ID_LIKE) ID_LIKE=$v;;
    esac
  done </etc/os-release
fi
case $ID in
  debian) dist=Debian;; ubuntu) dist=Ubuntu;; raspbian) dist=Debian;;
  *) dist=${NAME%% *};;
esac
version=$VERSION_ID
if [ "$dist" = Debian ] && [ -r /etc/debian_version ]; then
  version=$(cat /etc/debian_version)
fi
case " $ID $ID_LIKE " in
  *" debian "* | *" ubuntu "*) family=Debian;;
  *" rhel "* | *" fedora "* | *" centos "*) family=RedHat;;
  *) family=$dist;;
esac
s distribution "$dist"
s distribution_release "$VERSION_CODENAME"
s distribution_version "$version"
s distribution_major_version "${version%%.*}"
s os_family "$family"

# the machine
arch=$(uname -m)
s architecture "$arch"
s machine "$arch"
s system "$(uname -s)"
s kernel "$(uname -r)"
node=$(uname -n)
s nodename "$node"
s hostname "${node%%.*}"
# Python's socket.getfqdn(): the first name with a dot of the host's
# address's entry, else that entry's name, else the node name; from
# /etc/hosts alone (a DNS lookup with no answer costs seconds each deploy)
fqdn=$node
addr=$(getent -s files hosts "$node" 2>/dev/null | awk '{ print $1; exit }')
if [ -n "$addr" ]; then
  fqdn=$(getent -s files hosts "$addr" 2>/dev/null | awk -v n="$node" '
    NR == 1 { for (i = 2; i <= NF; i++) if (index($i, ".")) { print $i; exit } print $2; exit }
    END { if (NR == 0) print n }')
fi
s fqdn "$fqdn"
case $fqdn in *.*) s domain "${fqdn#*.}";; *) s domain "";; esac
awk '/^MemTotal:/ { printf "i\tmemtotal_mb\t%d\n", $2 / 1024 }' /proc/meminfo
# processors as Ansible counts them on Linux: sockets x cores x threads
awk -F ': *' '
  /^processor/ { n++ }
  /^physical id/ { ids[$2] = 1 }
  /^cpu cores/ && !cores { cores = $2 }
  /^siblings/ && !sib { sib = $2 }
  END {
    c = 0; for (x in ids) c++; if (c == 0) c = 1
    if (!cores) cores = n / c
    t = (sib && cores) ? sib / cores : 1
    printf "i\tprocessor_count\t%d\ni\tprocessor_cores\t%d\ni\tprocessor_threads_per_core\t%d\n", c, cores, t
    printf "i\tprocessor_vcpus\t%d\n", (sib ? t * cores * c : n)
  }' /proc/cpuinfo

# the default route's interface and address, and every IPv4 address but loopback
printf 'l\tall_ipv4_addresses\n'
ip -4 -o addr show 2>/dev/null | awk '{ split($4, a, "/"); if (a[1] !~ /^127\./) printf "l\tall_ipv4_addresses\t%s\n", a[1] }'
printf 'd\tdefault_ipv4\n'
route=$(ip -4 route get 8.8.8.8 2>/dev/null | head -n 1)
if [ -n "$route" ]; then
  set -f
  # shellcheck disable=SC2086 # the route's words
  set -- $route
  set +f
  gw=""; dev=""; src=""
  while [ $# -gt 1 ]; do
    case $1 in via) gw=$2;; dev) dev=$2;; src) src=$2;; esac
    shift
  done
  d default_ipv4 gateway "$gw"
  d default_ipv4 interface "$dev"
  d default_ipv4 alias "$dev"
  d default_ipv4 address "$src"
  ip -4 -o addr show dev "$dev" 2>/dev/null | awk -v src="$src" '
    { for (i = 1; i <= NF; i++) if ($i == "inet") { split($(i + 1), a, "/"); if (a[1] != src) next; p = a[2] }
      b = ""; for (i = 1; i <= NF; i++) if ($i == "brd") b = $(i + 1)
      split(src, o, "."); m = p; mask = ""; net = ""
      for (k = 1; k <= 4; k++) {
        bits = (m >= 8) ? 8 : (m > 0 ? m : 0); m -= bits
        v = 256 - 2 ^ (8 - bits); if (bits == 0) v = 0
        mask = mask (k > 1 ? "." : "") v
        net = net (k > 1 ? "." : "") and8(o[k], v)
      }
      printf "d\tdefault_ipv4\tprefix\t%s\nd\tdefault_ipv4\tnetmask\t%s\nd\tdefault_ipv4\tnetwork\t%s\nd\tdefault_ipv4\tbroadcast\t%s\n", p, mask, net, b
      exit }
    function and8(x, y,   r, bit) { r = 0; for (bit = 128; bit >= 1; bit /= 2) { if (x >= bit && y >= bit) r += bit; if (x >= bit) x -= bit; if (y >= bit) y -= bit } return r }'
  ip -o link show dev "$dev" 2>/dev/null | awk '
    { for (i = 1; i <= NF; i++) { if ($i == "mtu") printf "D\tdefault_ipv4\tmtu\t%s\n", $(i + 1)
        if ($i ~ /^link\//) { t = substr($i, 6); printf "d\tdefault_ipv4\ttype\t%s\nd\tdefault_ipv4\tmacaddress\t%s\n", (t == "ether" ? "ether" : t), $(i + 1) } } }'
fi

# who and where
user=$(id -un)
s user_id "$user"
s user_dir "$(getent passwd "$user" | cut -d: -f6)"
printf 'd\tenv\n'
env | while IFS='=' read -r k v; do
  case $k in *[!A-Za-z0-9_]* | "") continue;; esac
  case $v in *"$tab"*) continue;; esac
  d env "$k" "$v"
done

# the service manager (PID 1's name, as Ansible reads it) and the
# virtualization, as far as the host tells without root-only tools
pid1=$(cat /proc/1/comm 2>/dev/null || echo "")
case $pid1 in
  "" | init | *sh) if [ -d /run/systemd/system ]; then pid1=systemd; else pid1=sysvinit; fi;;
esac
s service_mgr "$pid1"
virt=NA; role=NA
if grep -qE '/docker(/|-[0-9a-f]+\.scope)' /proc/1/cgroup 2>/dev/null; then
  virt=docker; role=guest
elif tr '\0' '\n' 2>/dev/null </proc/1/environ | grep -q '^container=.'; then
  c=$(tr '\0' '\n' 2>/dev/null </proc/1/environ | sed -n 's/^container=//p' | head -n 1)
  case $c in lxc | podman) virt=$c;; *) virt=container;; esac
  role=guest
elif [ -e /.dockerenv ] || [ -e /.dockerinit ]; then
  virt=docker; role=guest
else
  product=$(cat /sys/class/dmi/id/product_name 2>/dev/null || echo "")
  vendor=$(cat /sys/class/dmi/id/sys_vendor 2>/dev/null || echo "")
  case "$product $vendor" in
    *KVM* | *QEMU* | *"Google Compute Engine"* | *"OpenStack"*) virt=kvm; role=guest;;
    *VMware*) virt=VMware; role=guest;;
    *VirtualBox*) virt=virtualbox; role=guest;;
    *"HVM domU"* | *Xen*) virt=xen; role=guest;;
    *"Amazon EC2"*) virt=kvm; role=guest;;
    *Microsoft*) virt=VirtualPC; role=guest;;
  esac
fi
s virtualization_type "$virt"
s virtualization_role "$role"

# lsb: what lsb_release says when it is installed (it answers from
# os-release, so that is read here: running it, a Python program, would
# cost more than all the rest), else /etc/lsb-release
printf 'd\tlsb\n'
if command -v lsb_release >/dev/null 2>&1; then
  d lsb id "$dist"; d lsb description "$PRETTY_NAME"
  d lsb release "$VERSION_ID"; d lsb major_release "${VERSION_ID%%.*}"; d lsb codename "$VERSION_CODENAME"
elif [ -r /etc/lsb-release ]; then
  while IFS='=' read -r k v; do
    v=${v#\"}; v=${v%\"}
    case $k in
      DISTRIB_ID) d lsb id "$v";;
      DISTRIB_DESCRIPTION) d lsb description "$v";;
      DISTRIB_RELEASE) d lsb release "$v"; d lsb major_release "${v%%.*}";;
      DISTRIB_CODENAME) d lsb codename "$v";;
    esac
  done </etc/lsb-release
fi

# the time on the host, as Ansible's date_time (every value a string)
printf 'd\tdate_time\n'
date -u '+%s %Y %m %d %H %M %S %N %Z %z %A %w %W' | {
  read -r epoch y mo dd hh mi ss ns _tz _off wd wn wk
  us=$(printf '%s' "$ns" | cut -c1-6)
  # local time, as Ansible's date_time gives it, and its zone
  # shellcheck disable=SC2046 # its words, split on purpose
  set -- $(date "+%Y %m %d %H %M %S %Z %z %A %w %W" -d "@$epoch")
  d date_time epoch "$epoch"; d date_time epoch_int "$epoch"
  d date_time year "$1"; d date_time month "$2"; d date_time day "$3"
  d date_time hour "$4"; d date_time minute "$5"; d date_time second "$6"
  d date_time date "$1-$2-$3"; d date_time time "$4:$5:$6"
  d date_time tz "$7"; d date_time tz_dst "$7"; d date_time tz_offset "$8"
  d date_time weekday "$9"; d date_time weekday_number "${10}"; d date_time weeknumber "${11}"
  d date_time iso8601 "$y-$mo-${dd}T$hh:$mi:${ss}Z"
  d date_time iso8601_micro "$y-$mo-${dd}T$hh:$mi:$ss.${us}Z"
  d date_time iso8601_basic "$1$2$3T$4$5$6$us"
  d date_time iso8601_basic_short "$1$2$3T$4$5$6"
  : "$wd" "$wn" "$wk"
}
printf 'end\n'
