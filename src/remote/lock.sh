# take_lock HOLDER: take this host's deploy lock, or name the deploy holding
# it on stderr and exit 75. Its holder taking it again is a no-op. Prepended
# to the first command of an apply, so taking the lock costs no round trip.
take_lock() {
  mkdir -p /var/lib/deploy 2>/dev/null
  if mkdir /var/lib/deploy/lock 2>/dev/null; then
    printf '%s\n' "$1" >/var/lib/deploy/lock/holder
  elif [ "$(cat /var/lib/deploy/lock/holder 2>/dev/null)" != "$1" ]; then
    printf 'deploy-lock-held\t%s\n' "$(tr '\n\t' '  ' </var/lib/deploy/lock/holder 2>/dev/null)" >&2
    exit 75
  fi
}
# finish_lock HOLDER AUDIT_LINE: append the audit line and release the lock,
# only if HOLDER holds it.
finish_lock() {
  if [ "$(cat /var/lib/deploy/lock/holder 2>/dev/null)" = "$1" ]; then
    [ -n "$2" ] && printf '%s\n' "$2" >>/var/lib/deploy/audit.log
    rm -f /var/lib/deploy/lock/holder; rmdir /var/lib/deploy/lock
  fi
}
