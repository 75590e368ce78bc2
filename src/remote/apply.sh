# deploy apply: argv: JOURNAL_ID HOLDER AUDIT_LINE STALL_SECONDS KEEP_JOURNALS
# UPLOAD_KIB; stdin: a tar of the new contents as `c/K/NAME` (K: one directory
# of targets, NAME: the target's own name) and, last, `manifest`, one line per
# path (tab-separated):
#   D N PATH MODE OWNER GROUP EXPECTED        make a directory
#   M N PATH MODE OWNER GROUP EXPECTED        set owner/mode
#   F N PATH MODE OWNER GROUP EXPECTED K VALIDATE   put c/K/NAME at PATH
#   R N PATH - - - EXPECTED                   remove
# (`-`: keep what is there, or the default for a new path). An upload without
# its manifest (the controller stopped it) changes nothing.
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
tmpid=$(printf '%s' "$id" | tr '/' '-')
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
# receive: unpack stdin into $j/new, killing tar when no byte arrived for
# $stall seconds (a partitioned network leaves the read blocked for ever)
receive() {
  exec 3<&0
  # -m: the files are new now (mtime of the swap, not of the archive)
  tar -xmf - -C "$j/new" <&3 2>"$j/tar.err" &
  _tar=$!
  exec 3<&-
  (
    _last=-1; _quiet=0
    while kill -0 "$_tar" 2>/dev/null; do
      _now=$(du -sk "$j/new" 2>/dev/null | cut -f1)
      if [ "$_now" = "$_last" ]; then _quiet=$((_quiet + 1)); else _quiet=0; _last=$_now; fi
      if [ "$_quiet" -ge "$stall" ]; then : >"$j/stalled"; kill "$_tar" 2>/dev/null; break; fi
      sleep 1
    done
    # never the session's output: sshd waits for every holder of it, and a
    # watchdog asleep would hold the finished upload's session open
  ) </dev/null >/dev/null 2>&1 &
  _dog=$!
  wait "$_tar"; _rc=$?
  kill "$_dog" 2>/dev/null
  return "$_rc"
}
# subst TEXT REPLACEMENT: TEXT with every %s replaced (no sed: the
# replacement is data, never a pattern)
subst() {
  _r=""; _t=$1
  while :; do
    case $_t in
      *%s*) _r="$_r${_t%%"%s"*}$2"; _t=${_t#*"%s"};;
      *) break;;
    esac
  done
  printf '%s' "$_r$_t"
}
# free_kib DIR: what the filesystem of DIR has free for root, in KiB
free_kib() { df -Pk -- "$1" | awk 'NR == 2 { print $4 }'; }
# by_key FILE CMD...: for each distinct KEY of FILE's `KEY<TAB>PATH` lines,
# one `CMD... KEY PATH...` (xargs splits a list too long for one argv)
by_key() {
  _f=$1; shift
  [ -s "$_f" ] || return 0
  cut -f1 "$_f" | sort -u >"$_f.keys" || return 1
  while IFS= read -r _k; do
    # string comparison: as numbers, 644 and 0644 would be one key
    awk -F "$tab" -v k="$_k" '($1 "") == (k "") { print substr($0, length(k) + 2) }' "$_f" |
      xargs -r -d '\n' "$@" "$_k" || return 1
  done <"$_f.keys"
}
printf 'deploy-apply\t1\n'
if [ "$(cat "$state/lock/holder" 2>/dev/null)" != "$holder" ]; then
  emit "E${tab}lock${tab}this deploy does not hold the lock of $state (released or taken over?)"; exit 3
fi
if ! mkdir -p "$j/new" "$j/old"; then emit "E${tab}journal${tab}cannot create $j"; exit 3; fi
free=$(free_kib "$j")
if [ "$upload_kib" -gt 0 ] && [ "$upload_kib" -ge "${free:-0}" ]; then
  abort upload "the upload takes ${upload_kib} KiB, and the disk of $state has ${free:-0} KiB free: nothing was changed; free space there first"
fi
if ! receive; then
  if [ -e "$j/stalled" ]; then
    abort upload "no data arrived for ${stall}s: the connection stalled; nothing was changed"
  fi
  abort upload "cannot unpack the upload into $j: $(head -c 300 "$j/tar.err" | tr '\n\t' '  ') (disk full? connection dropped?)"
fi
m=$j/new/manifest
[ -f "$m" ] || abort upload "the upload ended before its manifest (the controller stopped it); nothing was changed"
emit "U${tab}received"
# pass 1: nothing is changed here. Validation first, so that the checks
# below, and the swap right after them, see the host as it is then.
bad=0
while IFS="$tab" read -r op n path _ _ _ _ k validate; do
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
done <"$m"
if [ $bad = 1 ]; then
  drop_journal
  emit "E${tab}validate${tab}validation failed; nothing was changed on this host"; exit 4
fi
# one stat and one sha256sum for every existing file the manifest expects
# to find with some contents; read back in step below (`%n` and the name
# sha256sum prints are checked, so a line out of step is never misread)
while IFS="$tab" read -r op n path _ _ _ exp _; do
  case $exp in sha256:*) [ -f "$path" ] && [ ! -L "$path" ] && printf '%s\n' "$path";; esac
done <"$m" >"$j/q"
: >"$j/q.stat"; : >"$j/q.sum"
if [ -s "$j/q" ]; then
  xargs -d '\n' stat -c "%d$tab%s$tab%a$tab%u$tab%g$tab%n" -- <"$j/q" >"$j/q.stat" 2>/dev/null
  xargs -d '\n' sha256sum -- <"$j/q" >"$j/q.sum" 2>/dev/null
fi
exec 4<"$j/q.stat" 5<"$j/q.sum"
instep=1
# look PATH: sets c (what PATH is: absent, dir, other, sha256:HEX) and, for a
# file, dev size fmode fuid fgid
look() {
  dev=""; size=0; fmode=""; fuid=""; fgid=""
  if [ -L "$1" ]; then c=other
  elif [ -d "$1" ]; then c=dir
  elif [ -f "$1" ]; then
    c=""
    case $exp in sha256:*)
      if [ "$instep" = 1 ] && IFS="$tab" read -r dev size fmode fuid fgid _n <&4 && [ "$_n" = "$1" ] &&
        IFS= read -r _s <&5 && [ "${_s#*  }" = "$1" ]; then
        c="sha256:${_s%% *}"
      else instep=0; fi;;
    esac
    if [ -z "$c" ]; then
      IFS="$tab" read -r dev size fmode fuid fgid <<STAT
$(stat -c "%d$tab%s$tab%a$tab%u$tab%g" -- "$1")
STAT
      c="sha256:$(sha256sum <"$1" | cut -d' ' -f1)"
    fi
  elif [ -e "$1" ]; then c=other
  else c=absent; fi
}
jdev=$(stat -c %d -- "$j")
# Each F line's resolved mode and owner go to `resolved`, in step with the
# manifest, for pass 2.
need=0; skip="$nl"
: >"$j/resolved"
while IFS="$tab" read -r op n path mode owner group exp _; do
  look "$path"
  if [ "$op" = F ]; then
    # `-`: an existing file keeps its own, a new one gets the defaults
    [ "$mode" = - ] && { [ -n "$fmode" ] && mode=$fmode || mode=0644; }
    [ "$owner" = - ] && [ -n "$fuid" ] && owner=$fuid
    [ "$group" = - ] && [ -n "$fgid" ] && group=$fgid
    printf '%s\t%s\t%s\n' "$mode" "$owner" "$group" >>"$j/resolved"
  fi
  if [ "$c" != "$exp" ]; then
    emit "S${tab}${path}${tab}changed on the host since the plan (expected ${exp%%:*}, found ${c%%:*}); left untouched"
    skip="$skip$n$nl"; continue
  fi
  # the journal keeps the old version: free for a file on the journal's
  # filesystem (a hard link), a copy elsewhere
  [ "$op" = F ] && [ -n "$dev" ] && [ "$dev" != "$jdev" ] && need=$((need + size / 1024 + 1))
  [ "$op" = R ] && need=$((need + $(du -sk -- "$path" 2>/dev/null | cut -f1)))
done <"$m"
exec 4<&- 5<&-
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
ownership() { if [ "$1" != - ] || [ "$2" != - ]; then printf '%s:%s' "${1#-}" "${2#-}"; else printf -- -; fi; }
applied=0
# directories, with their missing parents first, top-down as `mkdir -p`
# would, each journaled so that a revert removes exactly what this made
: >"$j/mkdir"; : >"$j/dmode"; : >"$j/down"; made="$nl"
while IFS="$tab" read -r op n path mode owner group _; do
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
  [ "$mode" = - ] || printf '%s\t%s\n' "$mode" "$path" >>"$j/dmode"
  og=$(ownership "$owner" "$group"); [ "$og" = - ] || printf '%s\t%s\n' "$og" "$path" >>"$j/down"
done <"$m"
if [ -s "$j/mkdir" ]; then
  reverting "directories"
  xargs -d '\n' mkdir -- <"$j/mkdir" 2>"$j/err" || fail "directories" "cannot create: $(head -c 300 "$j/err" | tr '\n' ' ')"
  by_key "$j/dmode" chmod 2>"$j/err" || fail "directories" "cannot set modes: $(head -c 300 "$j/err" | tr '\n' ' ')"
  by_key "$j/down" chown 2>"$j/err" || fail "directories" "cannot set owners: $(head -c 300 "$j/err" | tr '\n' ' ')"
  while IFS= read -r p; do emit "A${tab}${p}"; applied=$((applied + 1)); done <"$j/mkdir"
fi
# owner and mode of existing paths, one at a time (rare)
while IFS="$tab" read -r op n path mode owner group _; do
  [ "$op" = M ] || continue
  skipped "$n" && continue
  reverting "$path"
  printf 'M\t%s\tmeta\t%s\t%s\n' "$path" "$n" "$(stat -c '%a %u %g' "$path")" >>"$j/journal"
  og=$(ownership "$owner" "$group")
  if ! { [ "$mode" = - ] || chmod "$mode" "$path"; } || ! { [ "$og" = - ] || chown "$og" "$path"; }; then
    fail "$path" "cannot set owner/mode ($og $mode)"
  fi
  emit "A${tab}${path}"; applied=$((applied + 1))
done <"$m"
# files: journal each (the old version kept first), then owner and mode on
# the staged copies, then one `mv -t` per directory
: >"$j/fmode"; : >"$j/fown"; : >"$j/dirs"; : >"$j/done"; lastk=""
exec 4<"$j/resolved"
while IFS="$tab" read -r op n path _ _ _ exp k _; do
  [ "$op" = F ] || continue
  IFS="$tab" read -r mode owner group <&4
  skipped "$n" && continue
  if [ "$exp" = absent ]; then
    printf 'F\t%s\tabsent\t%s\t-\n' "$path" "$n" >>"$j/journal"
  else
    ln -- "$path" "$j/old/$n" 2>/dev/null || cp -p -- "$path" "$j/old/$n" ||
      fail "$path" "cannot save the old file to the journal"
    printf 'F\t%s\tfile\t%s\t-\n' "$path" "$n" >>"$j/journal"
  fi
  s=$j/new/c/$k/${path##*/}
  printf '%s\t%s\n' "$mode" "$s" >>"$j/fmode"
  og=$(ownership "$owner" "$group"); [ "$og" = - ] || printf '%s\t%s\n' "$og" "$s" >>"$j/fown"
  d=${path%/*}; [ -n "$d" ] || d=/
  [ "$k" = "$lastk" ] || printf '%s\t%s\n' "$k" "$d" >>"$j/dirs"
  lastk=$k
  printf '%s\t%s\n' "$k" "$path" >>"$j/done"
done <"$m"
exec 4<&-
if [ -s "$j/done" ]; then
  reverting "files"
  by_key "$j/fmode" chmod 2>"$j/err" || fail "files" "cannot set modes: $(head -c 300 "$j/err" | tr '\n' ' ')"
  by_key "$j/fown" chown 2>"$j/err" || fail "files" "cannot set owners: $(head -c 300 "$j/err" | tr '\n' ' ')"
  # the names to rename, one list per directory
  awk -F "$tab" -v out="$j/mv." '
    NR == 1 || $1 != k { if (NR > 1) close(out k); k = $1 }
    { n = substr($0, length(k) + 2); sub(/.*\//, "", n); print n > (out k) }' "$j/done"
  cut -f2 "$j/dirs" | xargs -d '\n' stat -c %d -- >"$j/dirs.dev" 2>"$j/err" ||
    fail "files" "a directory for this phase's files is not there: $(head -c 300 "$j/err" | tr '\n' ' ')"
  exec 4<"$j/dirs.dev"
  while IFS="$tab" read -r k d; do
    IFS= read -r ddev <&4
    from=$j/new/c/$k
    # on another filesystem than the journal, the new files are copied next
    # to their directory first, so that what puts them in place is a rename
    if [ "$ddev" != "$jdev" ]; then
      printf 'T\t%s\t-\t-\t-\n' "$d/.deploy-$tmpid" >>"$j/journal"
      mv -- "$from" "$d/.deploy-$tmpid" 2>"$j/err" ||
        fail "$d" "cannot copy the new files next to it (disk full?): $(head -c 300 "$j/err" | tr '\n' ' ')"
      from=$d/.deploy-$tmpid
    fi
    (cd "$from" && xargs -r -d '\n' mv -f -t "$d" -- <"$j/mv.$k") 2>"$j/err" ||
      fail "$d" "cannot rename the new files into place (disk full?): $(head -c 300 "$j/err" | tr '\n' ' ')"
    [ "$from" = "$j/new/c/$k" ] || rm -rf -- "$from"
  done <"$j/dirs"
  exec 4<&-
  while IFS="$tab" read -r _ p; do emit "A${tab}${p}"; applied=$((applied + 1)); done <"$j/done"
fi
# removals, each kept in the journal first
while IFS="$tab" read -r op n path _; do
  [ "$op" = R ] || continue
  skipped "$n" && continue
  reverting "$path"
  cp -a "$path" "$j/old/$n" || fail "$path" "cannot save to the journal before removing"
  printf 'R\t%s\tpresent\t%s\t-\n' "$path" "$n" >>"$j/journal"
  rm -rf "$path" || fail "$path" "cannot remove"
  emit "A${tab}${path}"; applied=$((applied + 1))
done <"$m"
rm -rf "$j/new"
echo 'done' >"$j/state"
[ -e "$j/controller-gone" ] && echo controller-gone >>"$j/state"
emit "DONE${tab}${applied}"
# the host's last step: finish here rather than in another round trip
if [ -n "$audit" ]; then
  finish_lock "$holder" "$audit"
  prune_journals "$keep"
  emit "FINISHED"
fi
