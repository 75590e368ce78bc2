# take_lock HOLDER: take this host's deploy lock, or name the deploy holding
# it on stderr and exit 75. Its holder taking it again is a no-op. Prepended
# to the first command of an apply, so taking the lock costs no round trip.
set -u
export LC_ALL=C
state=${DEPLOY_STATE:-/var/lib/deploy}
take_lock() {
  [ -d "$state" ] || mkdir -p "$state" 2>/dev/null
  if mkdir "$state/lock" 2>/dev/null; then
    printf '%s\n' "$1" >"$state/lock/holder"
  elif [ "$(cat "$state/lock/holder" 2>/dev/null)" != "$1" ]; then
    printf 'deploy-lock-held\t%s\n' "$(tr '\n\t' '  ' <"$state/lock/holder" 2>/dev/null)" >&2
    exit 75
  fi
}
# finish_lock HOLDER AUDIT_LINE: append the audit line and release the lock,
# only if HOLDER holds it.
finish_lock() {
  _held=""; { read -r _held <"$state/lock/holder"; } 2>/dev/null
  if [ "$_held" = "$1" ]; then
    [ -n "$2" ] && printf '%s\n' "$2" >>"$state/audit.log"
    rm -rf -- "$state/lock"
  fi
}
# prune_journals KEEP: keep the newest KEEP deploys' journals (deploy ids
# sort by time); never one a dead-man revert may still need (armed, neither
# confirmed nor reverted). KEEP 0: keep all.
prune_journals() {
  [ "$1" -gt 0 ] 2>/dev/null || return 0
  # a glob sorts as `ls | sort` does under LC_ALL=C, oldest first: the
  # first (count - KEEP) go; no process unless one does
  _n=0
  for _p in "$state"/journal/*; do [ -d "$_p" ] && _n=$((_n + 1)); done
  for _p in "$state"/journal/*; do
    [ "$_n" -le "$1" ] && break
    [ -d "$_p" ] || continue
    _n=$((_n - 1))
    if [ -f "$_p/deadman.armed" ] && [ ! -e "$_p/confirmed" ] && [ ! -e "$_p/reverted" ]; then continue; fi
    rm -rf "$_p"
  done
}
