# deploy disarm: the controller got in over a fresh connection; cancel exactly
# this deploy's timer. argv: DEPLOY_ID   output: DISARMED MECHANISM | E ...
set -u
export LC_ALL=C
state=${DEPLOY_STATE:-/var/lib/deploy}
printf 'deploy-disarm\t1\n'
id=$1
j=$state/journal/$id; tab=$(printf '\t')
[ -e "$j/reverted" ] && { printf 'E\treverted\tthe host already reverted this deploy\n'; exit 3; }
IFS="$tab" read -r mech handle _deadline <"$j/deadman.armed" || { printf 'E\tarmed\tno timer armed for %s\n' "$id"; exit 3; }
touch "$j/confirmed"
case $mech in
  systemd) systemctl stop "$handle.timer" "$handle.service" >/dev/null 2>&1;;
  at) atrm "$handle" 2>/dev/null;;
  # the sleeper leads its own process group (setsid): end exactly that group
  sleeper) kill -- "-$handle" 2>/dev/null || kill "$handle" 2>/dev/null;;
esac
printf '%s CONFIRMED deploy=%s over a fresh connection; %s timer %s cancelled\n' "$(date -u +%FT%TZ)" "$id" "$mech" "$handle" >>"$state/audit.log"
printf 'DISARMED\t%s\t%s\n' "$mech" "$handle"
