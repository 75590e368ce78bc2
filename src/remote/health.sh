# deploy health: wait until every check passes, each within its own timeout.
# stdin, tab-separated, one check a line:
#   S TIMEOUT PROJECT SERVICE   container healthy (its healthcheck), or running
#                               and stable when it has none
#   H TIMEOUT URL STATUS        HTTP status fetched from the host
#   T TIMEOUT HOST PORT         TCP connect
#   M TIMEOUT COMMAND           command exits 0
#   U TIMEOUT UNIT [USER]       systemd unit (of USER's own systemd, if given)
#                               active, and stable: the same main process and
#                               restart count on two polls
# output: P (passed) or F KIND WHAT WHY lines, L lines (a failed container's
# or unit's last log lines); exit 1 when any check failed. Output starts with the
# header `deploy-health 1`.
# shellcheck disable=SC2046 # `set -- $(svc_state ...)` splits its three words
set -u
export LC_ALL=C
tab=$(printf '\t')
printf 'deploy-health\t1\n'
now() { date +%s; }
# "STATE HEALTH ID" of a service's container, from `docker ps` (its format
# fields are stable across CLI and engine versions, unlike inspect templates).
svc_state() {
  line=$(docker ps -a --no-trunc --filter "label=com.docker.compose.project=$1" \
    --filter "label=com.docker.compose.service=$2" --format '{{.State}}|{{.Status}}|{{.ID}}' | head -n 1)
  [ -n "$line" ] || { echo missing; return; }
  st=${line%%|*}; rest=${line#*|}; status=${rest%%|*}; id=${rest#*|}
  case $status in
    *"(healthy)"*) h=healthy;; *"(unhealthy)"*) h=unhealthy;; *"(health: starting)"*) h=starting;; *) h=none;;
  esac
  echo "$st $h $id"
}
http_status() {
  if command -v curl >/dev/null 2>&1; then curl -s -o /dev/null -m 3 -w '%{http_code}' "$1"
  else wget -q -S -O /dev/null -T 3 "$1" 2>&1 | awk '/HTTP\//{c=$2} END{print c}'; fi
}
# sc USER ARGS...: systemctl, or the user's own
sc() {
  if [ -n "$1" ]; then
    _u=$1; shift
    runuser -u "$_u" -- env XDG_RUNTIME_DIR="/run/user/$(id -u "$_u")" systemctl --user "$@"
  else shift; systemctl "$@"; fi
}
# tcp_open HOST PORT: a TCP connection within 3s. POSIX sh has no sockets;
# bash (Essential on Debian) does, and gets host and port as arguments,
# never spliced into its code.
# shellcheck disable=SC2016 # bash expands $1 and $2, not us
tcp_open() {
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' tcp "$1" "$2" 2>/dev/null
}
failed=0
while IFS="$tab" read -r kind timeout a b; do
  deadline=$(( $(now) + timeout )); why="not ready"; ok=no; restarts=0; was_running=no; cid=""
  while :; do
    case $kind in
      S) set -- $(svc_state "$a" "$b")
         st=$1; health=${2:-}; cid=${3:-}
         if [ "$st" = missing ]; then why="no container"
         elif [ "$health" = healthy ]; then ok=yes; break
         elif [ "$health" = unhealthy ]; then why="container is unhealthy (its healthcheck fails)"; break
         elif [ "$st" = exited ] || [ "$st" = dead ]; then why="container $st"; break
         elif [ "$st" = restarting ]; then
           restarts=$((restarts + 1)); why="container keeps restarting (crash loop)"
           [ "$restarts" -ge 2 ] && break
         elif [ "$health" = none ] && [ "$st" = running ]; then
           # no healthcheck: running on two polls in a row, never seen restarting
           [ "$was_running" = yes ] && [ "$restarts" = 0 ] && { ok=yes; break; }
           was_running=yes; why="running, not yet stable"
         else why="container $st, health $health"; was_running=no; fi;;
      H) code=$(http_status "$a"); [ "$code" = "$b" ] && { ok=yes; break; }; why="HTTP status ${code:-none}, expected $b";;
      T) tcp_open "$a" "$b" && { ok=yes; break; }; why="cannot connect to $a:$b";;
      U) st=$(sc "$b" is-active "$a" 2>/dev/null)
         if [ "$st" = active ]; then
           now_pid="$(sc "$b" show -p MainPID --value "$a")/$(sc "$b" show -p NRestarts --value "$a")"
           [ "$was_running" = "$now_pid" ] && { ok=yes; break; }
           was_running=$now_pid; why="active, not yet stable"
         else
           was_running=no; why="unit is ${st:-unknown}"
           [ "$st" = failed ] && break
         fi;;
      M) out=$(sh -c "$a" 2>&1 </dev/null) && { ok=yes; break; }
         why="exit $?: $(printf '%s' "$out" | tail -n 3 | tr '\n\t' '  ')";;
    esac
    [ "$(now)" -ge "$deadline" ] && { why="$why (after ${timeout}s)"; break; }
    sleep 0.5
  done
  case $kind in
    S) what="$a/$b";; H) what="$a";; T) what="$a:$b";; M|U) what="$a";;
  esac
  if [ "$ok" = yes ]; then
    printf 'P\t%s\t%s\n' "$kind" "$what"
  else
    failed=1
    printf 'F\t%s\t%s\t%s\n' "$kind" "$what" "$why"
    if [ -n "$cid" ]; then docker logs --tail 20 "$cid" 2>&1 | sed "s/^/L${tab}/"; fi
    if [ "$kind" = U ] && [ -z "$b" ]; then journalctl -u "$a" -n 20 --no-pager -o cat 2>/dev/null | sed "s/^/L${tab}/"; fi
    if [ "$kind" = U ] && [ -n "$b" ]; then journalctl --user-unit "$a" -n 20 --no-pager -o cat 2>/dev/null | sed "s/^/L${tab}/"; fi
  fi
done
exit $failed
