# deploy probe: one round trip collects the state of every managed path.
# argv: DOCKER (yes|no) OLDMAX NSIZE SIZEPATH... NDIRS DIR... PATH...: the
# NSIZE paths after it are trees deploy would remove, whose files and bytes
# are counted; the NDIRS after those are directories new files need, each
# said when it is not one (`nodir KIND DIR`, KIND none|file|link|other)
# stdin: "F SHA256  PATH" of the files this deploy would write, F = d when
# its current contents a diff may show (never secret ones), else n: those
# that differ come back base64-encoded when at most OLDMAX bytes, so a
# changed host needs no second round trip before the plan is shown.
# Before the hashes, stdin holds queries about what is not a file, one a
# line, ended by a line `.`:
#   u UNIT   p PACKAGE   a USER   g GROUP   s SYSCTL_KEY   r PATH (contents)
#   U USER UNIT (a unit of USER's own systemd)   l USER (lingers?)
#   c ID unless|onlyif COMMAND (a read-only guard: its exit status)
# output: versioned, tab-separated.
set -u
export LC_ALL=C
state=${DEPLOY_STATE:-/var/lib/deploy}
docker=$1; oldmax=$2; nsize=$3; shift 3
tab=$(printf '\t'); nl='
'
printf 'deploy-probe\t1\n'
units=""; pkgs=""
while IFS="$tab" read -r q a b c; do
  case $q in
    .) break;;
    u) units="$units$a$nl";;
    p) pkgs="$pkgs$a$nl";;
    a) if e=$(getent passwd "$a"); then
         printf 'acct\t%s\t%s\t%s\t%s\t%s\n' "$a" "$(printf '%s' "$e" | cut -d: -f3,4,6,7 | tr ':' '\t')" \
           "$(id -gn "$a" 2>/dev/null)" "$(id -Gn "$a" 2>/dev/null | tr ' ' ',')" "$([ -e "$(printf '%s' "$e" | cut -d: -f6)" ] && echo home || echo nohome)"
       else printf 'acct\t%s\t-\n' "$a"; fi;;
    # a user's own systemd, through its private socket (no user D-Bus needed)
    U) if st=$(runuser -u "$a" -- env XDG_RUNTIME_DIR="/run/user/$(id -u "$a" 2>/dev/null)" systemctl --user show \
           --no-pager --property=LoadState,ActiveState,UnitFileState,MainPID,NRestarts -- "$b" 2>/dev/null); then
         printf '%s\n' "$st" | awk -v u="$a" -v n="$b" '
           { v[substr($0, 1, index($0, "=") - 1)] = substr($0, index($0, "=") + 1) }
           END { printf "uunit\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u, n, v["LoadState"], v["ActiveState"], v["UnitFileState"], v["MainPID"], v["NRestarts"] }'
       else printf 'uunit\t%s\t%s\t-\n' "$a" "$b"; fi;;
    l) if [ -e "/var/lib/systemd/linger/$a" ]; then printf 'linger\t%s\tyes\n' "$a"; else printf 'linger\t%s\tno\n' "$a"; fi;;
    g) if e=$(getent group "$a"); then printf 'grp\t%s\t%s\n' "$a" "$(printf '%s' "$e" | cut -d: -f3)"
       else printf 'grp\t%s\t-\n' "$a"; fi;;
    s) f=/proc/sys/$(printf '%s' "$a" | tr . /)
       if [ -r "$f" ]; then printf 'sysctl\t%s\t%s\n' "$a" "$(tr '\t\n' '  ' <"$f" | sed 's/ *$//')"
       else printf 'sysctl\t%s\t-\n' "$a"; fi;;
    c) timeout 60 sh -c "$c" </dev/null >/dev/null 2>&1; printf 'guard\t%s\t%s\t%s\n' "$a" "$b" "$?";;
    r) if [ -f "$a" ]; then
         size=$(stat -c %s -- "$a") || continue
         if [ "$size" -le "$oldmax" ]; then printf 'read\t%s\t' "$a"; base64 -w0 -- "$a"; printf '\n'
         else printf 'read\t%s\t-%s\n' "$a" "$size"; fi
       fi;;
  esac
done
if [ -n "$units" ]; then
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    # one call for every unit: blocks in argument order, blank-line separated
    printf '%s' "$units" | xargs -d '\n' systemctl show --no-pager \
      --property=LoadState,ActiveState,UnitFileState,MainPID,NRestarts -- 2>/dev/null |
      awk -v names="$(printf '%s' "$units" | tr '\n' ' ')" '
        BEGIN { n = split(names, name, " "); i = 1 }
        function flush() { if (i <= n) printf "unit\t%s\t%s\t%s\t%s\t%s\t%s\n", name[i], v["LoadState"], v["ActiveState"], v["UnitFileState"], v["MainPID"], v["NRestarts"]; i++; delete v }
        /^$/ { flush(); next }
        { k = substr($0, 1, index($0, "=") - 1); v[k] = substr($0, index($0, "=") + 1) }
        END { flush() }'
  else
    printf 'systemd\tnone\n'
  fi
fi
if [ -n "$pkgs" ]; then
  if command -v apt-cache >/dev/null 2>&1; then
    # installed, candidate and every version the archive has, per package
    # (a version only in /var/lib/dpkg/status is installed, not downloadable)
    printf '%s' "$pkgs" | xargs -d '\n' apt-cache policy -- 2>/dev/null | awk '
      function keep() { if (v != "" && real) vers = vers (vers == "" ? "" : " ") v; v = "" }
      function flush() { keep(); if (p != "") printf "pkg\t%s\t%s\t%s\t%s\n", p, inst, cand, vers; p = "" }
      /^[^ ].*:$/ { flush(); p = substr($0, 1, length($0) - 1); inst = "-"; cand = "-"; vers = ""; next }
      /^  Installed: / { inst = ($2 == "(none)") ? "-" : $2; next }
      /^  Candidate: / { cand = ($2 == "(none)") ? "-" : $2; next }
      /^ \*\*\* / { keep(); v = $2; real = 0; next }
      /^     [^ ]/ { keep(); v = $1; real = 0; next }
      /^        [0-9]/ { if ($2 != "/var/lib/dpkg/status") real = 1; next }
      END { flush() }'
  else
    printf 'apt\tnone\n'
  fi
fi
read -r hostname </proc/sys/kernel/hostname || hostname=$(uname -n)
printf 'host\t%s\n' "$hostname"
printf 'client\t%s\n' "${SSH_CONNECTION:-}"
while [ "$nsize" -gt 0 ]; do
  if [ -d "$1" ] && [ ! -L "$1" ]; then
    printf 'size\t%s\t%s\t%s\n' "$(find "$1" | wc -l | tr -d ' ')" "$(du -sb -- "$1" | cut -f1)" "$1"
  fi
  shift; nsize=$((nsize - 1))
done
ndirs=$1; shift
while [ "$ndirs" -gt 0 ]; do
  # builtins only: a first deploy asks about directories that are all there
  if [ ! -d "$1" ]; then
    if [ -L "$1" ]; then k='link'; elif [ -f "$1" ]; then k='file'; elif [ -e "$1" ]; then k='other'; else k='none'; fi
    printf 'nodir\t%s\t%s\n' "$k" "$1"
  fi
  shift; ndirs=$((ndirs - 1))
done
if [ -d "$state/lock" ]; then
  holder=$(tr '\n\t' '  ' <"$state/lock/holder" 2>/dev/null)
  printf 'lock\tseen\t%s\n' "$holder"
  # how far the holder's deploy got on this host, phase by phase
  hid=${holder##*deploy=}; hid=${hid%% *}
  if [ -n "$hid" ]; then
    for p in "$state/journal/$hid"/p*/; do
      [ -d "$p" ] || continue
      printf 'journal\t%s\t%s\t%s\n' "$(basename "$p")" \
        "$(tr '\n' ' ' 2>/dev/null <"$p/state" || echo uploading)" \
        "$(cat "$p/journal" "$p/journal.reverted" 2>/dev/null | wc -l | tr -d ' ')"
    done
  fi
fi
last=$(tail -n 1 "$state/audit.log" 2>/dev/null)
case $last in *" REVERTED "*) printf 'reverted\t%s\n' "$last";; esac
# Which containers of a project compose would leave as they are, were it
# run now on the files the host has (PROJECT WORKDIR FILES, FILES the
# comma-separated config_files label): v2 answers with `up --dry-run`
# ("Container NAME  Running"), one line per container name; v1 has no dry
# run, and prints "SERVICE HASH" lines of `config --hash` to compare with
# the containers' config-hash labels.
compose_current() {
  p=$1; wd=$2; files=$3
  set --
  old_ifs=$IFS; IFS=,
  set -f  # split the list on commas only; never glob
  for f in $files; do set -- "$@" -f "$f"; done
  set +f; IFS=$old_ifs
  if docker compose version >/dev/null 2>&1; then
    docker compose --ansi never --progress plain -p "$p" --project-directory "$wd" "$@" up -d --dry-run --no-build 2>&1 \
      | sed -n 's/^.*Container \(.*[^ ]\)  *Running$/name \1/p'
  else
    (cd "$wd" && docker-compose -p "$p" "$@" config --hash '*') | sed 's/^/hash /'
  fi
}
if [ "$docker" = yes ]; then
  if ! command -v docker >/dev/null 2>&1; then
    printf 'compose\tnone\n'
  else
    if docker compose version >/dev/null 2>&1; then printf 'compose\tv2\n'
    elif command -v docker-compose >/dev/null 2>&1; then printf 'compose\tv1\n'
    else printf 'compose\tnone\n'; fi
    # fields split on the unit separator: tabs would collapse empty ones
    us=$(printf '\037')
    if ps=$(docker ps -a --no-trunc --format "{{.ID}}$us{{.Label \"com.docker.compose.project\"}}$us{{.Label \"com.docker.compose.service\"}}$us{{.Label \"deploy.inputs\"}}$us{{.State}}$us{{.Label \"com.docker.compose.config-hash\"}}$us{{.Label \"com.docker.compose.project.working_dir\"}}$us{{.Label \"com.docker.compose.project.config_files\"}}$us{{.Names}}" 2>/dev/null); then
      seen=""; current=""
      while IFS="$us" read -r id proj svc inputs st chash wd cfiles name; do
        [ -n "$id" ] || continue
        # a container compose made outside deploy (no inputs label) is
        # adopted when compose, run now on the host's files, would keep it
        adopt=""
        if [ -z "$inputs" ] && [ -n "$proj" ] && [ -d "$wd" ]; then
          case "$nl$seen" in *"$nl$proj$nl"*) ;; *)
            seen="$seen$proj$nl"
            current="$current$(compose_current "$proj" "$wd" "$cfiles" 2>/dev/null | sed "s/^/$proj /")$nl";;
          esac
          case "$nl$current" in
            *"$nl$proj name $name$nl"* | *"$nl$proj hash $svc $chash$nl"*) adopt=yes;;
            *) adopt=no;;
          esac
        fi
        printf 'C\t%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$proj" "$svc" "$inputs" "$st" "$adopt"
      done <<EOF
$ps
EOF
    else printf 'docker\tunreachable\n'; fi
  fi
fi
if [ $# -gt 0 ]; then
  st=$(stat --printf 'P\t%F\t%a\t%u\t%g\t%n\n' -- "$@" 2>/dev/null)
fi
if [ -n "${st:-}" ]; then
  printf '%s\n' "$st"
  # what each symbolic link points at (`link PATH TARGET`): only when there is one
  case $st in *"${nl}P${tab}symbolic link$tab"* | "P${tab}symbolic link$tab"*)
    printf '%s\n' "$st" | awk -F "$tab" '$2 == "symbolic link" { p = $0; for (i = 0; i < 5; i++) p = substr(p, index(p, "\t") + 1); print p }' |
      while IFS= read -r p; do printf 'link\t%s\t%s\n' "$p" "$(readlink -- "$p")"; done;;
  esac
  # one line "UIDS;GIDS" (each distinct id once), then the regular files
  list=$(printf '%s\n' "$st" | awk -F "$tab" '
    { u[$4]; g[$5]; if ($2 ~ /^regular/) { p = $0; for (i = 0; i < 5; i++) p = substr(p, index(p, "\t") + 1); f[++n] = p } }
    END { for (x in u) printf "%s ", x; printf ";"; for (x in g) printf "%s ", x; printf "\n"
          for (i = 1; i <= n; i++) print f[i] }')
  ids=${list%%"$nl"*}
  case $list in *"$nl"*) files=${list#*"$nl"};; *) files="";; esac
  # names once per distinct id, not per path (stat's %U reads the user
  # database for each of 1,000 files: most of the probe's time)
  set -f
  # shellcheck disable=SC2086 # numeric ids, split on purpose
  getent passwd ${ids%;*} | while IFS=: read -r n _ id _; do printf 'uid\t%s\t%s\n' "$id" "$n"; done
  # shellcheck disable=SC2086
  getent group ${ids#*;} | while IFS=: read -r n _ id _; do printf 'gid\t%s\t%s\n' "$id" "$n"; done
  set +f
  # Current sums (stdin) against the wanted ones (this script's stdin, on
  # fd 3): a file as wanted is only counted (S: ranges of wanted line
  # numbers), so a tree of 1,000 files in sync is one line; any other sum
  # is printed (H), and a differing file is named for its contents (O:
  # its diff may be shown) or its size alone (Z: secret or big), so that
  # the plan sees a file about to be emptied.
  out=$({ if [ -n "$files" ]; then printf '%s\n' "$files" | xargs -d '\n' sha256sum -- 2>/dev/null; fi | awk '
    function flush() { if (s != "") r = r (r == "" ? "" : ",") (s == e ? s : s "-" e); s = "" }
    { cur[substr($0, 67)] = substr($0, 1, 64) }
    END { s = ""; e = -1; r = ""
      while ((getline l < "/dev/fd/3") > 0) {
        n++; p = substr(l, 69); h = substr(l, 3, 64)
        if (!(p in cur)) continue
        if (cur[p] == h) { if (s != "" && n == e + 1) e = n; else { flush(); s = n; e = n } }
        else { print "H\t" cur[p] "  " p; print (substr(l, 1, 1) == "d" ? "O" : "Z") "\t" p }
        delete cur[p] }
      flush(); if (r != "") print "S\t" r
      for (p in cur) print "H\t" cur[p] "  " p }'; } 3<&0)
  case "$nl$out" in
    *"${nl}O$tab"* | *"${nl}Z$tab"*)
      printf '%s\n' "$out" | grep -v '^[OZ]'
      printf '%s\n' "$out" | grep '^[OZ]' | while IFS="$tab" read -r k p; do
        size=$(stat -c %s -- "$p") || continue
        if [ "$k" = O ] && [ "$size" -le "$oldmax" ]; then
          printf 'old\t%s\t' "$p"; base64 -w0 -- "$p"; printf '\n'
        else
          printf 'old\t%s\t-%s\n' "$p" "$size"
        fi
      done;;
    "$nl") ;;
    *) printf '%s\n' "$out";;
  esac
else
  cat >/dev/null  # drained, or the controller's write of it fails
fi
printf 'end\n'
