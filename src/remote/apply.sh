# deploy apply: argv: JOURNAL_ID HOLDER AUDIT_LINE STALL_SECONDS KEEP_JOURNALS; stdin: tar with `manifest` and the
# new contents as files named by index. Output lines (tab-separated), after the
# header `deploy-apply 1`:
#   A path        applied            S path why   skipped (changed since plan)
#   V path rc     validation failed  O text       a line of validator output
#   X path why    a path the rollback of a failed swap could not restore
#   E what why    fatal: nothing (more) was changed
#   U received    the upload is in   DONE n       finished
#   FINISHED      audit line written, lock released
# Pass 1 checks and validates without changing anything; pass 2 journals the
# old state and swaps each file in with a rename; a failure in pass 2 restores
# everything done so far from the journal. Once pass 2 starts it runs to the
# end whatever happens to the SSH session: hangups and a closed output are
# ignored, and every line also goes to the journal's `log`. An upload that
# fails, or brings no data for STALL_SECONDS (a connection gone quiet), is
# dropped with its journal, and the lock released: nobody is left to do it.
# The journal's `state` says how far it got: swapping, done, rolled-back;
# `controller-gone` is added when the controller stopped reading.
# Needs lib.sh (revert_journal) and lock.sh (finish_lock).
set -u
export LC_ALL=C
state=${DEPLOY_STATE:-/var/lib/deploy}
id=$1; holder=$2; audit=${3:-}; stall=${4:-60}; keep=${5:-0}
# a controller gone (closed channel, hangup) must not kill this script
# halfway: writes then fail instead, and it cleans up or finishes
trap '' HUP PIPE
j=$state/journal/$id; tab=$(printf '\t')
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
  tar -xf - -C "$j/new" <&3 2>"$j/tar.err" &
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
printf 'deploy-apply\t1\n'
if [ "$(cat "$state/lock/holder" 2>/dev/null)" != "$holder" ]; then
  emit "E${tab}lock${tab}this deploy does not hold the lock of $state (released or taken over?)"; exit 3
fi
if ! mkdir -p "$j/new" "$j/old"; then emit "E${tab}journal${tab}cannot create $j"; exit 3; fi
if ! receive; then
  if [ -e "$j/stalled" ]; then
    abort upload "no data arrived for ${stall}s: the connection stalled; nothing was changed"
  fi
  abort upload "cannot unpack the upload into $j: $(head -c 300 "$j/tar.err" | tr '\n\t' '  ') (disk full? connection dropped?)"
fi
emit "U${tab}received"
cur() {
  if [ -L "$1" ]; then echo other
  elif [ -d "$1" ]; then echo dir
  elif [ -f "$1" ]; then echo "sha256:$(sha256sum <"$1" | cut -d' ' -f1)"
  elif [ -e "$1" ]; then echo other
  else echo absent; fi
}
: >"$j/skip"
skipped() { grep -qx "$1" "$j/skip"; }
# pass 1: nothing is changed here
bad=0
while IFS="$tab" read -r op n path mode owner group exp validate; do
  c=$(cur "$path")
  if [ "$c" != "$exp" ]; then
    emit "S${tab}${path}${tab}changed on the host since the plan (expected ${exp%%:*}, found ${c%%:*}); left untouched"
    printf '%s\n' "$n" >>"$j/skip"; continue
  fi
  if [ "$op" = F ] && [ -n "$validate" ]; then
    # the path goes in as Ansible puts it, unquoted: it is ours, with no
    # blanks or quotes, and a %s inside the command's own quotes still works
    out=$(sh -c "$(subst "$validate" "$j/new/$n")" 2>&1 </dev/null)
    rc=$?
    if [ $rc -ne 0 ]; then
      bad=1
      emit "V${tab}${path}${tab}${rc}"
      [ -n "$out" ] && printf '%s\n' "$out" | head -n 30 | sed "s/^/O${tab}/"
    fi
  fi
done <"$j/new/manifest"
if [ $bad = 1 ]; then
  drop_journal
  emit "E${tab}validate${tab}validation failed; nothing was changed on this host"; exit 4
fi
# what removals put in the journal must fit, or nothing is removed
need=0
while IFS="$tab" read -r op n path _; do
  [ "$op" = R ] || continue
  skipped "$n" && continue
  need=$((need + $(du -sk -- "$path" 2>/dev/null | cut -f1)))
done <"$j/new/manifest"
if [ "$need" -gt 0 ]; then
  free=$(df -Pk "$j" | awk 'NR == 2 { print $4 }')
  if [ "$need" -ge "$free" ]; then
    drop_journal
    emit "E${tab}journal${tab}the paths to remove take ${need} KiB, and the journal's disk has ${free} KiB free: nothing was removed or changed; free space under $state first"
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
meta() { if [ "$1" != - ]; then chmod "$1" "$3" || return 1; fi; if [ "$2" != - ]; then chown "$2" "$3" || return 1; fi; }
applied=0
deploy_dir=$state/journal/${id%%/*}
while IFS="$tab" read -r op n path mode owner group exp validate; do
  skipped "$n" && continue
  # the dead-man timer reverted this deploy meanwhile: write nothing more
  [ -e "$deploy_dir/reverting" ] && fail "$path" "the host's dead-man switch is reverting this deploy"
  og=-
  if [ "$owner" != - ] || [ "$group" != - ]; then
    og="${owner#-}:${group#-}"
  fi
  case $op in
    D)
      # missing parents first, top-down, as `mkdir -p` would, but each with
      # root's defaults (0755, umask 022) and journaled, so that a revert
      # removes exactly the parents this deploy made
      missing=""; p=$(dirname "$path")
      while [ ! -e "$p" ]; do
        missing="$p
$missing"; p=$(dirname "$p")
      done
      old_ifs=$IFS; IFS='
'; set -f
      for p in $missing; do
        printf 'D\t%s\tabsent\t-\t-\n' "$p" >>"$j/journal"
        mkdir "$p" || { IFS=$old_ifs; fail "$p" "cannot create directory (a parent of $path)"; }
        emit "A${tab}${p}"
      done
      IFS=$old_ifs; set +f
      printf 'D\t%s\tabsent\t%s\t-\n' "$path" "$n" >>"$j/journal"
      mkdir "$path" || fail "$path" "cannot create directory"
      [ "$mode" = - ] && mode=0755
      meta "$mode" "$og" "$path" || fail "$path" "cannot set owner/mode ($og $mode)";;
    F)
      tmp="$(dirname "$path")/.$(basename "$path").deploy-$tmpid"
      if [ "$exp" = absent ]; then
        printf 'F\t%s\tabsent\t%s\t-\n' "$path" "$n" >>"$j/journal"
        [ "$mode" = - ] && mode=0644
      else
        cp -p "$path" "$j/old/$n" || fail "$path" "cannot save the old file to the journal"
        printf 'F\t%s\tfile\t%s\t-\n' "$path" "$n" >>"$j/journal"
      fi
      cp "$j/new/$n" "$tmp" || { rm -f "$tmp"; fail "$path" "cannot write $tmp (disk full?)"; }
      if [ "$exp" != absent ]; then
        { chmod --reference="$path" "$tmp" && chown --reference="$path" "$tmp"; } || { rm -f "$tmp"; fail "$path" "cannot copy owner/mode"; }
      fi
      meta "$mode" "$og" "$tmp" || { rm -f "$tmp"; fail "$path" "cannot set owner/mode ($og $mode)"; }
      mv -f "$tmp" "$path" || { rm -f "$tmp"; fail "$path" "cannot rename into place"; };;
    M)
      printf 'M\t%s\tmeta\t%s\t%s\n' "$path" "$n" "$(stat -c '%a %u %g' "$path")" >>"$j/journal"
      meta "$mode" "$og" "$path" || fail "$path" "cannot set owner/mode ($og $mode)";;
    R)
      cp -a "$path" "$j/old/$n" || fail "$path" "cannot save to the journal before removing"
      printf 'R\t%s\tpresent\t%s\t-\n' "$path" "$n" >>"$j/journal"
      rm -rf "$path" || fail "$path" "cannot remove";;
  esac
  applied=$((applied + 1))
  emit "A${tab}${path}"
done <"$j/new/manifest"
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
