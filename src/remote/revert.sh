# deploy revert: restore what the journal JOURNAL_ID recorded (a failed
# phase's rollback). argv: JOURNAL_ID AUDIT_PREFIX
# output: header, X lines (paths not restored), then REVERTED or
# REVERT-INCOMPLETE N. An incomplete revert is also written to the audit log.
set -u
export LC_ALL=C
state=${DEPLOY_STATE:-/var/lib/deploy}
printf 'deploy-revert\t1\n'
j=$state/journal/$1
if revert_journal "$j"; then
  printf 'REVERTED\t%s\n' "$1"
else
  n=$(wc -l <"$j/revert-incomplete" | tr -d ' ')
  printf '%s REVERT-INCOMPLETE journal=%s paths_not_restored=%s\n' "$(date -u +%FT%TZ)" "$1" "$n" >>"$state/audit.log"
  printf 'REVERT-INCOMPLETE\t%s\t%s\n' "$1" "$n"
fi
