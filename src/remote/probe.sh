# deploy probe: one round trip collects the state of every managed path.
# argv: MODE (check|lock) HOLDER DOCKER (yes|no) PATH...
# output: versioned, tab-separated.
mode=$1; holder=$2; docker=$3; shift 3
printf 'deploy-probe\t1\n'
printf 'host\t%s\n' "$(uname -n)"
printf 'client\t%s\n' "${SSH_CONNECTION:-}"
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
last=$(tail -n 1 "$state/audit.log" 2>/dev/null)
case $last in *" REVERTED "*) printf 'reverted\t%s\n' "$last";; esac
if [ "$docker" = yes ]; then
  if ! command -v docker >/dev/null 2>&1; then
    printf 'compose\tnone\n'
  else
    if docker compose version >/dev/null 2>&1; then printf 'compose\tv2\n'
    elif command -v docker-compose >/dev/null 2>&1; then printf 'compose\tv1\n'
    else printf 'compose\tnone\n'; fi
    docker ps -a --no-trunc --format 'C\t{{.ID}}\t{{.Label "com.docker.compose.project"}}\t{{.Label "com.docker.compose.service"}}\t{{.Label "deploy.inputs"}}\t{{.State}}' 2>/dev/null \
      || printf 'docker\tunreachable\n'
  fi
fi
if [ $# -gt 0 ]; then
  stat --printf 'P\t%F\t%a\t%u\t%g\t%U\t%G\t%n\n' -- "$@" 2>/dev/null
  find "$@" -maxdepth 0 -type f -exec sha256sum -- {} + 2>/dev/null | sed 's/^/H\t/'
fi
printf 'end\n'
