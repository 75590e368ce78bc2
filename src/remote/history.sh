# deploy history: the host's audit log, newest last. argv: MAX_LINES
set -u
export LC_ALL=C
state=${DEPLOY_STATE:-/var/lib/deploy}
printf 'deploy-history\t1\n'
tail -n "$1" "$state/audit.log" 2>/dev/null | tr '\t' ' ' | sed 's/^/A\t/'
printf 'end\n'
