# deploy compose: container actions for one project. stdin, tab-separated:
#   P VARIANT DIR PROJECT FILE...   (first line)
#   U                       up -d (everything, dependencies honoured)
#   C SERVICE...            up -d --no-deps (create or start)
#   R SERVICE...            up -d --no-deps --force-recreate
#   D SERVICE...            rm -s -f (remove; used by rollback)
#   X SERVICE ARG...        reload: run ARG... in the service's container
# output: the header `deploy-compose 1`, OK/E lines; compose's own output as
# O lines.
# shellcheck disable=SC2086 # `set -- $rest` splits a line's tab-separated words
set -u
export LC_ALL=C
set -f
tab=$(printf '\t')
printf 'deploy-compose\t1\n'
IFS="$tab" read -r _ variant dir project files
# dc ARG...: compose with `-f FILE` for each compose file first. The files
# are tab-separated in $files; each becomes its own argument (paths may
# hold spaces), then the caller's arguments are rotated behind them.
dc() {
  _n=$#
  IFS="$tab"
  for f in $files; do set -- "$@" -f "$f"; done
  unset IFS
  while [ "$_n" -gt 0 ]; do set -- "$@" "$1"; shift; _n=$((_n - 1)); done
  if [ "$variant" = v2 ]; then docker compose --project-directory "$dir" -p "$project" "$@"
  else docker-compose --project-directory "$dir" -p "$project" "$@"; fi
}
run() {
  if out=$("$@" 2>&1); then printf '%s\n' "$out" | sed "s/^/O${tab}/"; return 0
  else rc=$?; printf '%s\n' "$out" | tail -n 30 | sed "s/^/O${tab}/"; return $rc; fi
}
cd "$dir" 2>/dev/null || cd /
while IFS="$tab" read -r op rest; do
  IFS="$tab"; set -- $rest; unset IFS
  case $op in
    U) run dc up -d || { printf 'E\tup\tcompose up failed\n'; exit 3; };;
    C) run dc up -d --no-deps "$@" || { printf 'E\tup\tcompose up of %s failed\n' "$*"; exit 3; };;
    R) run dc up -d --no-deps --force-recreate "$@" || { printf 'E\trecreate\tcompose recreate of %s failed\n' "$*"; exit 3; };;
    D) # by label, not through compose: the compose files may already be restored away
       for svc do
         docker ps -aq --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=$svc" \
           | xargs -r docker rm -f >/dev/null || { printf 'E\tremove\tremoving %s failed\n' "$svc"; exit 3; }
       done;;
    X) svc=$1; shift
       id=$(docker ps -q --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=$svc" | head -n 1)
       [ -n "$id" ] || { printf 'E\treload\tno running container for %s\n' "$svc"; exit 3; }
       run docker exec "$id" "$@" || { printf 'E\treload\treload command in %s failed\n' "$svc"; exit 3; };;
  esac
done
printf 'OK\n'
