# deploy arm: schedule this deploy's revert with a timer that does not depend
# on the SSH session. argv: DEPLOY_ID DELAY_SECONDS PREFER (auto|systemd|at|sleeper)
# AUDIT (the ARMED line for the audit log: who deploys what)
# stdin: tar with deadman.sh and compose.sh. output: ARMED MECHANISM HANDLE DEADLINE
set -u
export LC_ALL=C
state=${DEPLOY_STATE:-/var/lib/deploy}
printf 'deploy-arm\t1\n'
id=$1; delay=$2; prefer=$3
j=$state/journal/$id
umask 077
if ! { mkdir -p "$j" && tar -xf - -C "$j"; }; then printf 'E\tarm\tcannot write %s\n' "$j"; exit 3; fi
deadline=$(( $(date +%s) + delay ))
mech=""
if [ "$prefer" = auto ] || [ "$prefer" = systemd ]; then
  if command -v systemd-run >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    unit="deploy-deadman-$(printf '%s' "$id" | tr -c 'A-Za-z0-9\n' '-')"
    # the default timer accuracy is a minute: a revert that late is a minute more locked out
    if systemd-run --quiet --unit "$unit" --on-active="${delay}s" --timer-property=AccuracySec=1s --setenv=DEPLOY_STATE="$state" /bin/sh "$j/deadman.sh" "$id" >/dev/null 2>&1; then
      mech=systemd; handle=$unit
    fi
  fi
fi
if [ -z "$mech" ] && { [ "$prefer" = auto ] || [ "$prefer" = at ]; }; then
  # atd of this host, by its pid file: pgrep would also see an atd of another
  # container sharing the PID namespace, and a job no atd reads never fires
  apid=$(cat /run/atd.pid 2>/dev/null)
  if command -v at >/dev/null 2>&1 && { { [ -n "$apid" ] && [ "$(cat "/proc/$apid/comm" 2>/dev/null)" = atd ]; } || [ "$prefer" = at ]; }; then
    # at counts in minutes: round up, never revert early
    mins=$(( (delay + 59) / 60 ))
    out=$(echo "DEPLOY_STATE='$state' /bin/sh '$j/deadman.sh' '$id'" | at now + "$mins" minutes 2>&1)
    job=$(printf '%s\n' "$out" | awk '/^job /{print $2}')
    if [ -n "$job" ]; then mech='at'; handle=$job; deadline=$(( $(date +%s) + mins * 60 )); fi
  fi
fi
if [ -z "$mech" ]; then
  # a detached sleeper in its own session: survives the SSH session ending
  # shellcheck disable=SC2016 # the inner sh expands its own arguments
  nohup setsid sh -c 'sleep "$1"; export DEPLOY_STATE="$2"; exec /bin/sh "$3" "$4"' sleeper \
    "$delay" "$state" "$j/deadman.sh" "$id" </dev/null >/dev/null 2>&1 &
  handle=$!
  mech=sleeper
fi
printf '%s\t%s\t%s\n' "$mech" "$handle" "$deadline" >"$j/deadman.armed"
printf '%s mechanism=%s\n' "$4" "$mech" >>"$state/audit.log"
printf 'ARMED\t%s\t%s\t%s\n' "$mech" "$handle" "$deadline"
