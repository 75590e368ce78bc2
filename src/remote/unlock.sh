# deploy unlock: show and remove the lock. argv: none.
set -u
export LC_ALL=C
state=${DEPLOY_STATE:-/var/lib/deploy}
printf 'deploy-unlock\t1\n'
if [ -d "$state/lock" ]; then
  printf 'held\t%s\n' "$(tr '\n\t' '  ' <"$state/lock/holder" 2>/dev/null)"
  rm -f "$state/lock/holder"; rmdir "$state/lock"
else
  printf 'free\n'
fi
