# deploy apply: argv: JOURNAL_ID HOLDER AUDIT_LINE STALL_SECONDS KEEP_JOURNALS
# UPLOAD_KIB; stdin: `deploy-upload 1 BYTES` (29 bytes), the manifest
# (BYTES), one line per path (tab-separated), then a tar of the new contents
# as `c/K/NAME` (K: one directory of targets, NAME: the target's own name)
# ending with an empty `end`:
#   K K KIB DIR                               a directory of targets
#   D N PATH MODE OWNER GROUP EXPECTED        make a directory
#   M N PATH MODE OWNER GROUP EXPECTED        set owner/mode
#   F N PATH MODE OWNER GROUP EXPECTED K VALIDATE   put c/K/NAME at PATH
#   R N PATH - - - EXPECTED                   remove
#   L N PATH - - - EXPECTED - TARGET          make PATH a link to TARGET
# (`-`: keep what is there, or the default for a new path). An upload cut
# short (no `end`: the controller stopped it) changes nothing.
# Output lines (tab-separated), after the header `deploy-apply 1`:
#   A path        applied            S path why   skipped (changed since plan)
#   V path rc     validation failed  O text       a line of validator output
#   X path why    a path the rollback of a failed swap could not restore
#   E what why    fatal: nothing (more) was changed
#   U received    the upload is in   DONE n       finished
#   FINISHED      audit line written, lock released
# Pass 1 checks and validates without changing anything; pass 2 journals the
# old state and swaps the files in with renames. The work is batched per
# phase, not per file: one stat and one sha256sum for every existing file,
# one mkdir, one chmod per mode, one chown per owner and one `mv -t` per
# directory, each rename atomic; an old version is kept by a hard link (no
# copy) where the journal shares its filesystem. A failure in pass 2
# restores everything done so far from the journal. Once pass 2 starts it
# runs to the end whatever happens to the SSH session: hangups and a closed
# output are ignored, and every line also goes to the journal's `log`. An
# upload that fails, or brings no data for STALL_SECONDS (a connection gone
# quiet), is dropped with its journal, and the lock released: nobody is left
# to do it. The journal's `state` says how far it got: swapping, done,
# rolled-back; `controller-gone` is added when the controller stopped reading.
# Needs lib.sh (revert_journal) and lock.sh (finish_lock).
set -u
export LC_ALL=C
state=${DEPLOY_STATE:-/var/lib/deploy}
id=$1; holder=$2; audit=${3:-}; stall=${4:-60}; keep=${5:-0}; upload_kib=${6:-0}
# a controller gone (closed channel, hangup) must not kill this script
# halfway: writes then fail instead, and it cleans up or finishes
trap '' HUP PIPE
j=$state/journal/$id; tab=$(printf '\t'); nl='
'
# the journal id is DEPLOY/PHASE: one slash
tmpid=${id%%/*}-${id#*/}
umask 077
emit() {
  printf '%s\n' "$*" 2>/dev/null || { [ -d "$j" ] && : >"$j/controller-gone"; }
  [ -d "$j" ] && printf '%s\n' "$*" >>"$j/log"
  return 0
}
# drop_journal: nothing of this upload was applied; what ran before it in
# this phase (users, groups: their undo is journaled) is undone too
drop_journal() {
  if [ -f "$j/journal" ]; then revert_journal "$j" | while IFS= read -r l; do emit "$l"; done; fi
  rm -rf "$j"
}
# abort WHAT WHY: drop this upload and its journal, release the lock
abort() {
  emit "E${tab}$1${tab}$2"
  drop_journal
  finish_lock "$holder" "$(date -u +%FT%TZ) ABORTED deploy=${id%%/*} journal=$id reason=$1: $2"
  exit 3
}
# watched FUNCTION: run FUNCTION on this script's stdin in the background,
# killing it when $j/new has not grown for $stall seconds (a partitioned
# network leaves a read blocked for ever)
watched() {
  exec 3<&0
  "$1" <&3 &
  _job=$!
  exec 3<&-
  (
    _last=-1; _quiet=0
    # a short upload is in before the first look
    sleep 1
    while kill -0 "$_job" 2>/dev/null; do
      _now=$(du -sk "$j/new" 2>/dev/null | cut -f1)
      if [ "$_now" = "$_last" ]; then _quiet=$((_quiet + 1)); else _quiet=0; _last=$_now; fi
      if [ "$_quiet" -ge "$stall" ]; then : >"$j/stalled"; kill "$_job" 2>/dev/null; break; fi
      sleep 1
    done
    # never the session's output: sshd waits for every holder of it, and a
    # watchdog asleep would hold the finished upload's session open
  ) </dev/null >/dev/null 2>&1 &
  _dog=$!
  wait "$_job"; _rc=$?
  kill "$_dog" 2>/dev/null
  return "$_rc"
}
# manifest: the upload's head, `deploy-upload 1 BYTES` (29 bytes, BYTES
# padded with blanks), then BYTES of manifest into $j/new/manifest. Read
# with head -c, which takes no byte more than it is asked for.
manifest() {
  head -c 29 >"$j/new/head" || return 1
  IFS="$tab" read -r _w _v _n <"$j/new/head" || return 1
  _n=${_n##* }
  if [ "$_w" != deploy-upload ] || [ "$_v" != 1 ]; then return 2; fi
  case $_n in "" | *[!0-9]*) return 2;; esac
  head -c "$_n" >"$j/new/manifest"
}
# untar: unpack the rest of the upload into $j/new. -p: the modes the
# archive gives; -m: the files are new now (the swap's mtime, not the
# archive's)
untar() { tar -xpmf - -C "$j/new" 2>"$j/tar.err"; }
# by_key FILE CMD: for each distinct KEY of FILE's `KEY<TAB>PATH` lines, one
# `CMD KEY PATH...` of at most 500 paths (an argv stays far below its
# limit); the lists are built by the shell, not by more processes
by_key() {
  _file=$1; _cmd=$2; _rc=0
  [ -s "$_file" ] || return 0
  _keys=$nl
  while IFS="$tab" read -r _k _p; do
    case $_keys in *"$nl$_k$nl"*) ;; *) _keys="$_keys$_k$nl";; esac
  done <"$_file"
  _oifs=$IFS; IFS=$nl; set -f
  for _key in $_keys; do
    set --
    while IFS="$tab" read -r _k _p; do
      [ "$_k" = "$_key" ] || continue
      set -- "$@" "$_p"
      if [ $# -ge 500 ]; then "$_cmd" "$_key" -- "$@" || _rc=1; set --; fi
    done <"$_file"
    if [ $# -gt 0 ]; then "$_cmd" "$_key" -- "$@" || _rc=1; fi
  done
  IFS=$_oifs; set +f
  return "$_rc"
}
printf 'deploy-apply\t1\n'
held=""; { read -r held <"$state/lock/holder"; } 2>/dev/null
if [ "$held" != "$holder" ]; then
  emit "E${tab}lock${tab}this deploy does not hold the lock of $state (released or taken over?)"; exit 3
fi
staged=""
if ! mkdir -p "$j/new/c" "$j/old"; then emit "E${tab}journal${tab}cannot create $j"; exit 3; fi
cut_short="the upload was cut short (the controller stopped it); nothing was changed"
stalled="no data arrived for ${stall}s: the connection stalled; nothing was changed"
watched manifest; rc=$?
[ -e "$j/stalled" ] && abort upload "$stalled"
[ "$rc" -eq 2 ] && abort upload "this is not an upload of this version of deploy; nothing was changed"
m=$j/new/manifest
ML=""; mlen=""
[ -f "$m" ] && ML=$(cat "$m") && IFS="$tab" read -r _ _ mlen <"$j/new/head"
mlen=${mlen##* }
# all of it (less the last newline, which $(...) drops)
{ [ -n "$ML" ] && [ "${#ML}" -ge "$((mlen - 1))" ]; } || abort upload "$cut_short"
oifs=$IFS
# Each target directory's files are staged on its own mount where that is
# not the journal's (another filesystem, or a bind mount of the same one:
# rename(2) fails across both): `c/K` is a link to `A/.deploy-ID/K`, A the
# directory or, for one this upload makes, its nearest existing ancestor
# (on the same mount: no mount point lies on a path not made yet). The
# upload's bytes are written once, where they stay, and what puts each file
# in place is a rename. One mkdir and one ln make them all.
set -f; IFS=$nl
for line in $ML; do
  case $line in "K$tab"*) ;; *) continue;; esac
  line=${line#*"$tab"}; a=${line#*"$tab"*"$tab"}
  while [ ! -d "$a" ]; do a=${a%/*}; a=${a:-/}; done
  printf '%s\n' "$a"
done >"$j/kdirs"
IFS=$oifs; set +f
# (an upload of no file, only directories or removals, stages nothing)
: >"$j/kmounts"
[ -s "$j/kdirs" ] && mounts "$j" "$j/kdirs" >"$j/kmounts"
exec 4<"$j/kmounts"
jmount=""; IFS="$tab" read -r jmount _ <&4
jkib=$upload_kib; others=""; sd=""; ks=""; tl=""
set -f; IFS=$nl
for line in $ML; do
  case $line in "K$tab"*) ;; *) continue;; esac
  IFS=$oifs
  line=${line#*"$tab"}; k=${line%%"$tab"*}; line=${line#*"$tab"}; kib=${line%%"$tab"*}; d=${line#*"$tab"}
  IFS="$tab" read -r km a <&4
  case $k$kib in *[!0-9]*) abort manifest "bad K line for \`$d'";; esac
  # (not through a link in place of the directory: where it points is its own)
  if { [ "$a" != "$d" ] || [ ! -L "$d" ]; } && { [ "$km" != "$jmount" ] || [ "$km" = "?" ]; }; then
    s=${a%/}/.deploy-$tmpid
    case $nl$sd in *"$nl$s$nl"*) ;; *) sd="$sd$s$nl"; tl="${tl}T$tab$s$tab-$tab-$tab-$nl";; esac
    ks="$ks$s/$k$nl"
    jkib=$((jkib - kib))
    others="$others$km$tab$kib$tab$a$tab$d$nl"
  fi
  IFS=$nl
done
IFS=$oifs; set +f
exec 4<&-
if [ -n "$ks" ]; then
  printf '%s' "$tl" >>"$j/journal"
  set -f; IFS=$nl
  # shellcheck disable=SC2086 # one path per line, not globbed
  { mkdir -p -- $ks && ln -s -t "$j/new/c" -- $ks; } 2>"$j/err" ||
    abort upload "cannot stage the new files beside their directories: $(head -c 300 "$j/err" | tr '\n' ' ')"
  IFS=$oifs; set +f
fi
# (a small one that does not fit fails in tar, as cleanly)
if [ "$jkib" -ge 1024 ] && free=$(free_kib "$j") && [ "$jkib" -ge "${free:-0}" ]; then
  abort upload "the upload takes ${jkib} KiB, and the disk of $state has ${free:-0} KiB free: nothing was changed; free space there first"
fi
# per mount, the KiB that land there, and its first directory (for df, an
# existing one) and target (not summed when all of it is under 1 MiB)
[ "$((upload_kib - jkib))" -lt 1024 ] || others=$(printf '%s' "$others" | awk -F "$tab" -v OFS="$tab" '
  !($1 in kib) { order[++n] = $1; dir[$1] = $3; target[$1] = $4 } { kib[$1] += $2 }
  END { for (i = 1; i <= n; i++) print kib[order[i]], dir[order[i]], target[order[i]] }')
[ "$((upload_kib - jkib))" -lt 1024 ] && others=""
set -f; IFS=$nl
for line in $others; do
  IFS=$oifs
  kib=${line%%"$tab"*}; line=${line#*"$tab"}; a=${line%%"$tab"*}; d=${line#*"$tab"}
  if [ "$kib" -ge 1024 ] && free=$(free_kib "$a") && [ "$kib" -ge "${free:-0}" ]; then
    abort upload "the new files for $d take ${kib} KiB, and its disk has ${free:-0} KiB free: nothing was changed; free space there first"
  fi
  IFS=$nl
done
IFS=$oifs; set +f
if ! watched untar; then
  [ -e "$j/stalled" ] && abort upload "$stalled"
  abort upload "cannot unpack the upload into $j: $(head -c 300 "$j/tar.err" | tr '\n\t' '  ') (disk full? connection dropped?)"
fi
[ -f "$j/new/end" ] || abort upload "$cut_short"
emit "U${tab}received"
# The manifest was read once, into memory, and is walked with `for` (IFS
# a newline, no globbing): dash's `read` takes one byte per system call,
# and the phase's lines are walked several times.
# fields LINE: op n path mode owner group exp k validate of a manifest line
fields() {
  _l=$1
  op=${_l%%"$tab"*}; _l=${_l#*"$tab"}
  n=${_l%%"$tab"*}; _l=${_l#*"$tab"}
  path=${_l%%"$tab"*}; _l=${_l#*"$tab"}
  mode=${_l%%"$tab"*}; _l=${_l#*"$tab"}
  owner=${_l%%"$tab"*}; _l=${_l#*"$tab"}
  group=${_l%%"$tab"*}; _l=${_l#*"$tab"}
  exp=${_l%%"$tab"*}; k=""; validate=""
  case $_l in *"$tab"*)
    _l=${_l#*"$tab"}; k=${_l%%"$tab"*}
    case $_l in *"$tab"*) validate=${_l#*"$tab"};; esac;;
  esac
}
# pass 1: nothing is changed here. Validation first, so that the checks
# below, and the swap right after them, see the host as it is then.
bad=0
set -f; IFS=$nl
for line in $ML; do
  IFS=$oifs; fields "$line"
  if [ "$op" != F ] || [ -z "$validate" ]; then continue; fi
  # the path goes in as Ansible puts it, unquoted: it is ours, with no
  # blanks or quotes, and a %s inside the command's own quotes still works
  out=$(sh -c "$(subst "$validate" "$j/new/c/$k/${path##*/}")" 2>&1 </dev/null)
  rc=$?
  if [ $rc -ne 0 ]; then
    bad=1
    emit "V${tab}${path}${tab}${rc}"
    [ -n "$out" ] && printf '%s\n' "$out" | head -n 30 | sed "s/^/O${tab}/"
  fi
done
IFS=$oifs; set +f
if [ $bad = 1 ]; then
  drop_journal
  emit "E${tab}validate${tab}validation failed; nothing was changed on this host"; exit 4
fi
# one stat and one sha256sum for every existing file the manifest expects
# to find with some contents, joined to the manifest's lines by name: each
# line gets `C DEV SIZE MODE UID GID` in front (`-`: not a file looked at)
set -f; IFS=$nl
for line in $ML; do
  IFS=$oifs; fields "$line"
  case $exp in sha256:*) [ -f "$path" ] && [ ! -L "$path" ] && printf '%s\n' "$path";; esac
done >"$j/q"
IFS=$oifs; set +f
: >"$j/q.stat"; : >"$j/q.sum"
if [ -s "$j/q" ]; then
  xargs -d '\n' stat -c "%d$tab%s$tab%a$tab%u$tab%g$tab%n" -- <"$j/q" >"$j/q.stat" 2>/dev/null
  xargs -d '\n' sha256sum -- <"$j/q" >"$j/q.sum" 2>/dev/null
fi
# DEV is the file's mount, and the journal's is the first line of q.mnt
: >"$j/q.mnt"
[ -s "$j/q" ] && mounts "$j" "$j/q" >"$j/q.mnt"
# (nothing there to look at, a first deploy's case: no awk)
if [ ! -s "$j/q" ]; then
  AL=""; set -f; IFS=$nl
  for line in $ML; do
    case $line in "K$tab"*) ;; *) AL="$AL-$tab-$tab-$tab-$tab-$tab-$tab$line$nl";; esac
  done
  IFS=$oifs; set +f
else AL=$(awk -F "$tab" -v st="$j/q.stat" -v su="$j/q.sum" -v mn="$j/q.mnt" '
  FILENAME == mn { if (FNR > 1) mnt[substr($0, index($0, "\t") + 1)] = $1; next }
  FILENAME == st { n = $0; sub(/^[^\t]*\t[^\t]*\t[^\t]*\t[^\t]*\t[^\t]*\t/, "", n); s[n] = mnt[n] "\t" $2 "\t" $3 "\t" $4 "\t" $5; next }
  FILENAME == su { h[substr($0, 67)] = substr($0, 1, 64); next }
  $1 == "K" { next }
  { print (($3 in h) ? "sha256:" h[$3] : "-") "\t" (($3 in s) ? s[$3] : "-\t-\t-\t-\t-") "\t" $0 }
' "$j/q.mnt" "$j/q.stat" "$j/q.sum" "$m"); fi
# look PATH: sets c (what PATH is: absent, dir, other, sha256:HEX) for a
# path the batch did not hash, and for a file dev size fmode fuid fgid
look() {
  if [ -L "$1" ]; then
    # (readlink only where a link was expected: elsewhere any link differs)
    case $exp in link:*) c="link:$(readlink -- "$1")";; *) c=other;; esac
  elif [ -d "$1" ]; then c=dir
  elif [ -f "$1" ]; then
    case $exp in
      sha256:*) # changed since the batch looked: look again
        # (dev: a device, never the journal's mount, so a copy is counted)
        IFS="$tab" read -r dev size fmode fuid fgid <<STAT
$(stat -c "dev%d$tab%s$tab%a$tab%u$tab%g" -- "$1")
STAT
        c="sha256:$(sha256sum <"$1" | cut -d' ' -f1)";;
      # a file where none was expected: what it holds does not matter
      *) c="sha256:-";;
    esac
  elif [ -e "$1" ]; then c=other
  else c=absent; fi
}
jdev=""
[ -s "$j/q.mnt" ] && IFS="$tab" read -r jdev _ <"$j/q.mnt"
# Each F line's resolved mode and owner are kept as r_N for pass 2 (N is
# the line's number: digits, so the name is safe in eval, and the value is
# only ever referenced there, never expanded into code).
need=0; skip="$nl"
set -f; IFS=$nl
for line in $AL; do
  IFS=$oifs
  c=${line%%"$tab"*}; line=${line#*"$tab"}
  dev=${line%%"$tab"*}; line=${line#*"$tab"}
  size=${line%%"$tab"*}; line=${line#*"$tab"}
  fmode=${line%%"$tab"*}; line=${line#*"$tab"}
  fuid=${line%%"$tab"*}; line=${line#*"$tab"}
  fgid=${line%%"$tab"*}; line=${line#*"$tab"}
  fields "$line"
  [ "$c" = - ] && look "$path"
  if [ "$op" = F ]; then
    # `-`: an existing file keeps its own, a new one gets the defaults
    if [ "$mode" = - ]; then if [ "$fmode" != - ]; then mode=$fmode; else mode=0644; fi; fi
    [ "$owner" = - ] && owner=$fuid
    [ "$group" = - ] && group=$fgid
    case $n in *[!0-9]* | "") abort manifest "bad line number \`$n'";; esac
    _v="$mode$tab$owner$tab$group"; eval "r_$n=\$_v"
  fi
  if [ "$c" != "$exp" ]; then
    # (a sum is too long to read; a link's target is what tells)
    case $exp$c in *link:*) e=$exp; f=$c;; *) e=${exp%%:*}; f=${c%%:*};; esac
    emit "S${tab}${path}${tab}changed on the host since the plan (expected $e, found $f); left untouched"
    skip="$skip$n$nl"; continue
  fi
  # the journal keeps the old version: free for a file on the journal's
  # mount (a hard link), a copy elsewhere
  [ "$op" = F ] && [ "$dev" != - ] && [ "$dev" != "$jdev" ] && need=$((need + size / 1024 + 1))
  [ "$op" = R ] && need=$((need + $(du -sk -- "$path" 2>/dev/null | cut -f1)))
done
IFS=$oifs; set +f
skipped() { case $skip in *"$nl$1$nl"*) return 0;; esac; return 1; }
# what the journal saves must fit, or nothing is changed
if [ "$need" -gt 0 ]; then
  free=$(free_kib "$j")
  if [ "$need" -ge "$free" ]; then
    drop_journal
    emit "E${tab}journal${tab}the paths to remove and the old files to keep take ${need} KiB, and the journal's disk has ${free} KiB free: nothing was removed or changed; free space under $state first"
    exit 4
  fi
fi
if [ -e "$j/controller-gone" ]; then
  abort controller "the controller went away before the swap; nothing was changed"
fi
# pass 2: from here on the host finishes (or rolls back) on its own
trap '' HUP PIPE INT TERM
umask 022
# appended to: the phase's users and groups may be journaled already
: >>"$j/journal"
echo swapping >"$j/state"
fail() {
  emit "E${tab}$1${tab}$2; every change of this phase on this host was rolled back"
  revert_journal "$j" | while IFS= read -r l; do emit "$l"; done
  echo rolled-back >"$j/state"; exit 5
}
deploy_dir=$state/journal/${id%%/*}
# the dead-man timer reverted this deploy meanwhile: write nothing more
reverting() { [ -e "$deploy_dir/reverting" ] && fail "$1" "the host's dead-man switch is reverting this deploy"; }
# ownership OWNER GROUP: sets og, chown's argument, or - (no command
# substitution: that would be a process per path)
ownership() { if [ "$1" != - ] || [ "$2" != - ]; then og="${1#-}:${2#-}"; else og=-; fi; }
applied=0
# directories, with their missing parents first, top-down as `mkdir -p`
# would, each journaled so that a revert removes exactly what this made
: >"$j/mkdir"; : >"$j/dmode"; : >"$j/down"; made="$nl"
set -f; IFS=$nl
for line in $ML; do
  IFS=$oifs; fields "$line"
  [ "$op" = D ] || continue
  skipped "$n" && continue
  missing=""; p=${path%/*}
  while [ -n "$p" ] && [ ! -e "$p" ]; do
    case $made in *"$nl$p$nl"*) break;; esac
    missing="$p$nl$missing"; p=${p%/*}
  done
  old_ifs=$IFS; IFS=$nl; set -f
  for p in $missing; do
    printf 'D\t%s\tabsent\t-\t-\n' "$p" >>"$j/journal"
    printf '%s\n' "$p" >>"$j/mkdir"; made="$made$p$nl"
  done
  IFS=$old_ifs; set +f
  printf 'D\t%s\tabsent\t%s\t-\n' "$path" "$n" >>"$j/journal"
  printf '%s\n' "$path" >>"$j/mkdir"; made="$made$path$nl"
  # mkdir gives 0755 (umask 022)
  [ "$mode" = - ] || [ "$mode" = 0755 ] || printf '%s\t%s\n' "$mode" "$path" >>"$j/dmode"
  ownership "$owner" "$group"; [ "$og" = - ] || printf '%s\t%s\n' "$og" "$path" >>"$j/down"
done
IFS=$oifs; set +f
if [ -s "$j/mkdir" ]; then
  reverting "directories"
  # in order, parents first; a failure leaves the rest to the revert
  set --
  while IFS= read -r p; do set -- "$@" "$p"; done <"$j/mkdir"
  mkdir -- "$@" 2>"$j/err" || fail "directories" "cannot create: $(head -c 300 "$j/err" | tr '\n' ' ')"
  by_key "$j/dmode" chmod 2>"$j/err" || fail "directories" "cannot set modes: $(head -c 300 "$j/err" | tr '\n' ' ')"
  by_key "$j/down" chown 2>"$j/err" || fail "directories" "cannot set owners: $(head -c 300 "$j/err" | tr '\n' ' ')"
  while IFS= read -r p; do emit "A${tab}${p}"; applied=$((applied + 1)); done <"$j/mkdir"
fi
# owner and mode of existing paths, one at a time (rare)
set -f; IFS=$nl
for line in $ML; do
  IFS=$oifs; fields "$line"
  [ "$op" = M ] || continue
  skipped "$n" && continue
  reverting "$path"
  printf 'M\t%s\tmeta\t%s\t%s\n' "$path" "$n" "$(stat -c '%a %u %g' "$path")" >>"$j/journal"
  ownership "$owner" "$group"
  if ! { [ "$mode" = - ] || chmod "$mode" "$path"; } || ! { [ "$og" = - ] || chown "$og" "$path"; }; then
    fail "$path" "cannot set owner/mode ($og $mode)"
  fi
  emit "A${tab}${path}"; applied=$((applied + 1))
done
IFS=$oifs; set +f
# files: journal each (the old version kept first), then owner and mode on
# the staged copies, then one `mv -t` per directory
: >"$j/fmode"; : >"$j/fown"; set --
# the journal's lines and the list of files, written once after the loop
# (before anything is renamed, which is what they undo)
jl=""; DL=""
set -f; IFS=$nl
for line in $ML; do
  IFS=$oifs; fields "$line"; wanted=$mode
  [ "$op" = F ] || continue
  skipped "$n" && continue
  eval "_v=\$r_$n"
  mode=${_v%%"$tab"*}; _v=${_v#*"$tab"}; owner=${_v%%"$tab"*}; group=${_v#*"$tab"}
  if [ "$exp" = absent ]; then
    jl="${jl}F$tab$path${tab}absent$tab$n$tab-$nl"
  else
    ln -- "$path" "$j/old/$n" 2>/dev/null || cp -p -- "$path" "$j/old/$n" ||
      fail "$path" "cannot save the old file to the journal"
    jl="${jl}F$tab$path${tab}file$tab$n$tab-$nl"
  fi
  s=$j/new/c/$k/${path##*/}
  # the tar gave it the mode asked for, or 0644; a file that keeps the
  # mode it has needs a chmod
  [ "$wanted" = - ] && [ "$exp" != absent ] && printf '%s\t%s\n' "$mode" "$s" >>"$j/fmode"
  ownership "$owner" "$group"; [ "$og" = - ] || printf '%s\t%s\n' "$og" "$s" >>"$j/fown"
  d=${path%/*}; [ -n "$d" ] || d=/
  # each directory once, in the order of K (the manifest groups by it)
  [ "$k" = "${lastk-}" ] || set -- "$@" "$d"
  lastk=$k
  DL="$DL$k$tab$path$nl"
done
IFS=$oifs; set +f
printf '%s' "$jl" >>"$j/journal"
if [ -n "$DL" ]; then
  reverting "files"
  by_key "$j/fmode" chmod 2>"$j/err" || fail "files" "cannot set modes: $(head -c 300 "$j/err" | tr '\n' ' ')"
  by_key "$j/fown" chown 2>"$j/err" || fail "files" "cannot set owners: $(head -c 300 "$j/err" | tr '\n' ' ')"
  # directories staged before the upload (c/K a link) are ready; for the
  # others, the journal's mount, then each one's
  : >"$j/dirs"; ks=""
  for d in "$@"; do
    [ -d "$d" ] || fail "files" "a directory for this phase's files is not there: $d"
  done
  set -f; IFS=$nl
  for line in $DL; do
    k=${line%%"$tab"*}
    case $nl$ks in *"$nl$k$nl"*) continue;; esac
    ks="$ks$k$nl"
    [ -L "$j/new/c/$k" ] && continue
    path=${line#*"$tab"}; d=${path%/*}; printf '%s\n' "${d:-/}"
  done >"$j/dirs"
  IFS=$oifs; set +f
  [ -s "$j/dirs" ] && mounts "$j" "$j/dirs" >"$j/devs"
  [ -s "$j/dirs" ] && exec 4<"$j/devs" && IFS="$tab" read -r jdev _ <&4
  # rename_batch: `mv -t DIR` of the staged files gathered in "$@"
  rename_batch() {
    [ $# -eq 0 ] && return 0
    mv -f -t "$d" -- "$@" 2>"$j/err" ||
      fail "$d" "cannot rename the new files into place (disk full?): $(head -c 300 "$j/err" | tr '\n' ' ')"
  }
  lastk=""; set --
  set -f; IFS=$nl
  for line in $DL; do
    IFS=$oifs; k=${line%%"$tab"*}; path=${line#*"$tab"}
    if [ "$k" != "$lastk" ]; then
      rename_batch "$@"; set --
      d=${path%/*}; [ -n "$d" ] || d=/
      from=$j/new/c/$k
      # a link: staged on the directory's mount already (rename(2)
      # resolves the link; the file moves within that mount)
      if [ ! -L "$from" ]; then
        IFS="$tab" read -r ddev _ <&4
        # on another mount than the journal (another filesystem, or a bind
        # mount of the same one), the new files are copied next to their
        # directory first, so that what puts them in place is a rename
        if [ "$ddev" != "$jdev" ] || [ "$ddev" = "?" ]; then
          # (not .deploy-ID, which may be staging already through a link)
          printf 'T\t%s\t-\t-\t-\n' "${d%/}/.deploy-$tmpid.copy" >>"$j/journal"
          mv -- "$from" "${d%/}/.deploy-$tmpid.copy" 2>"$j/err" ||
            fail "$d" "cannot copy the new files next to it (disk full?): $(head -c 300 "$j/err" | tr '\n' ' ')"
          from=${d%/}/.deploy-$tmpid.copy
          staged="$staged$from$nl"
        fi
      fi
      lastk=$k
    fi
    set -- "$@" "$from/${path##*/}"
    if [ $# -ge 500 ]; then rename_batch "$@"; set --; fi
  done
  IFS=$oifs; set +f
  rename_batch "$@"
  [ -s "$j/dirs" ] && exec 4<&-
  # one write for all: `emit` per line would open the log per line
  al=""
  set -f; IFS=$nl
  for line in $DL; do al="${al}A$tab${line#*"$tab"}$nl"; applied=$((applied + 1)); done
  IFS=$oifs; set +f
  printf '%s' "$al" 2>/dev/null || : >"$j/controller-gone"
  printf '%s' "$al" >>"$j/log"
fi
# links, each journaled with what was there (nothing, or its old target),
# made beside the path and renamed over it: never missing in between
set -f; IFS=$nl
for line in $ML; do
  IFS=$oifs; fields "$line"
  [ "$op" = L ] || continue
  skipped "$n" && continue
  reverting "$path"
  case $exp in link:*) was="link"; old=${exp#link:};; *) was="absent"; old=-;; esac
  printf 'L\t%s\t%s\t%s\t%s\n' "$path" "$was" "$n" "$old" >>"$j/journal"
  if ! { ln -s -- "$validate" "$path.deploy-$tmpid" && mv -Tf -- "$path.deploy-$tmpid" "$path"; } 2>"$j/err"; then
    rm -f -- "$path.deploy-$tmpid"
    fail "$path" "cannot make the link: $(head -c 300 "$j/err" | tr '\n' ' ')"
  fi
  emit "A${tab}${path}"; applied=$((applied + 1))
done
IFS=$oifs; set +f
# removals, each kept in the journal first
set -f; IFS=$nl
for line in $ML; do
  IFS=$oifs; fields "$line"
  [ "$op" = R ] || continue
  skipped "$n" && continue
  reverting "$path"
  cp -a "$path" "$j/old/$n" || fail "$path" "cannot save to the journal before removing"
  printf 'R\t%s\tpresent\t%s\t-\n' "$path" "$n" >>"$j/journal"
  rm -rf "$path" || fail "$path" "cannot remove"
  emit "A${tab}${path}"; applied=$((applied + 1))
done
IFS=$oifs; set +f
# the staging directories, empty but for files skipped, and the upload's
# rest, in one go
set -- "$j/new"
set -f; IFS=$nl
for d in $sd $staged; do
  [ -e "$d" ] && set -- "$@" "$d"
done
IFS=$oifs; set +f
rm -rf -- "$@"
echo 'done' >"$j/state"
[ -e "$j/controller-gone" ] && echo controller-gone >>"$j/state"
emit "DONE${tab}${applied}"
# the host's last step: finish here rather than in another round trip
if [ -n "$audit" ]; then
  finish_lock "$holder" "$audit"
  prune_journals "$keep"
  emit "FINISHED"
fi
