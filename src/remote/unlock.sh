# deploy unlock: show and remove the lock. argv: none.
state=/var/lib/deploy
if [ -d "$state/lock" ]; then
  printf 'held\t%s\n' "$(tr '\n\t' '  ' <"$state/lock/holder" 2>/dev/null)"
  rm -f "$state/lock/holder"; rmdir "$state/lock"
else
  printf 'free\n'
fi
