# deploy health: wait until every check passes, each within its own timeout.
# stdin, tab-separated, one check a line:
#   S TIMEOUT PROJECT SERVICE   container healthy (its healthcheck), or running
#                               and stable when it has none
#   H TIMEOUT URL STATUS        HTTP status fetched from the host
#   T TIMEOUT HOST PORT         TCP connect
#   M TIMEOUT COMMAND           command exits 0
# output: P (passed) or F KIND WHAT WHY lines, L lines (a failed container's
# last log lines); exit 1 when any check failed.
tab=$(printf '\t')
now() { date +%s; }
svc_state() {
  id=$(docker ps -aq --filter "label=com.docker.compose.project=$1" --filter "label=com.docker.compose.service=$2" | head -n 1)
  [ -n "$id" ] || { echo "missing"; return; }
  docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.RestartCount}} {{.Id}}' "$id" 2>/dev/null || echo "missing"
}
http_status() {
  if command -v curl >/dev/null 2>&1; then curl -s -o /dev/null -m 3 -w '%{http_code}' "$1"
  else wget -q -S -O /dev/null -T 3 "$1" 2>&1 | awk '/HTTP\//{c=$2} END{print c}'; fi
}
failed=0
while IFS="$tab" read -r kind timeout a b; do
  deadline=$(( $(now) + timeout )); why="not ready"; ok=no; last_restarts=""; cid=""
  while :; do
    case $kind in
      S) set -- $(svc_state "$a" "$b")
         st=$1; health=${2:-}; restarts=${3:-0}; cid=${4:-}
         if [ "$st" = missing ]; then why="no container"
         elif [ "$health" = healthy ]; then ok=yes; break
         elif [ "$health" = unhealthy ]; then why="container is unhealthy (its healthcheck fails)"; break
         elif [ "$st" = exited ] || [ "$st" = dead ]; then why="container $st"; break
         elif [ "$health" = none ] && [ "$st" = running ]; then
           # no healthcheck: running, and still running without a restart on the next poll
           [ "$last_restarts" = "$restarts" ] && { ok=yes; break; }
           last_restarts=$restarts; why="running, not yet stable"
         else why="container $st, health $health"; fi;;
      H) code=$(http_status "$a"); [ "$code" = "$b" ] && { ok=yes; break; }; why="HTTP status ${code:-none}, expected $b";;
      T) bash -c "exec 3<>/dev/tcp/$a/$b" 2>/dev/null && { ok=yes; break; }; why="cannot connect to $a:$b";;
      M) out=$(sh -c "$a" 2>&1 </dev/null) && { ok=yes; break; }
         why="exit $?: $(printf '%s' "$out" | tail -n 3 | tr '\n\t' '  ')";;
    esac
    [ "$(now)" -ge "$deadline" ] && { why="$why (after ${timeout}s)"; break; }
    sleep 0.5
  done
  case $kind in
    S) what="$a/$b";; H) what="$a";; T) what="$a:$b";; M) what="$a";;
  esac
  if [ "$ok" = yes ]; then
    printf 'P\t%s\t%s\n' "$kind" "$what"
  else
    failed=1
    printf 'F\t%s\t%s\t%s\n' "$kind" "$what" "$why"
    if [ -n "$cid" ]; then docker logs --tail 20 "$cid" 2>&1 | sed "s/^/L${tab}/"; fi
  fi
done
exit $failed
