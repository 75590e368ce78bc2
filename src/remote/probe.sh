# deploy probe: one round trip collects the state of every managed path.
# argv: MODE (check|lock) HOLDER PATH...   output: versioned, tab-separated.
mode=$1; holder=$2; shift 2
printf 'deploy-probe\t1\n'
printf 'host\t%s\n' "$(uname -n)"
state=/var/lib/deploy
if [ "$mode" = lock ]; then
  mkdir -p "$state" 2>/dev/null
  if mkdir "$state/lock" 2>/dev/null; then
    printf '%s\n' "$holder" >"$state/lock/holder"
    printf 'lock\tacquired\n'
  else
    printf 'lock\ttaken\t%s\n' "$(tr '\n\t' '  ' <"$state/lock/holder" 2>/dev/null)"
  fi
elif [ -d "$state/lock" ]; then
  printf 'lock\tseen\t%s\n' "$(tr '\n\t' '  ' <"$state/lock/holder" 2>/dev/null)"
fi
if [ $# -gt 0 ]; then
  stat --printf 'P\t%F\t%a\t%u\t%g\t%U\t%G\t%n\n' -- "$@" 2>/dev/null
  find "$@" -maxdepth 0 -type f -exec sha256sum -- {} + 2>/dev/null | sed 's/^/H\t/'
fi
printf 'end\n'
