# deploy finish: append the audit line and release our lock; after a
# successful deploy, prune old journals. argv: HOLDER AUDIT_LINE [KEEP]
set -u
export LC_ALL=C
# shellcheck disable=SC2034 # read by finish_lock (lock.sh, sent before this)
state=${DEPLOY_STATE:-/var/lib/deploy}
printf 'deploy-finish\t1\n'
finish_lock "$1" "$2"
prune_journals "${3:-0}"
