# deploy status: what the host records about deploys. argv: none
set -u
export LC_ALL=C
state=${DEPLOY_STATE:-/var/lib/deploy}
printf 'deploy-hoststatus\t1\n'
if [ -d "$state/lock" ]; then printf 'lock\t%s\n' "$(tr '\n\t' '  ' <"$state/lock/holder" 2>/dev/null)"; fi
for d in "$state"/journal/*/; do
  [ -f "$d/deadman.armed" ] || continue
  [ -e "$d/confirmed" ] || [ -e "$d/reverted" ] && continue
  printf 'pending\t%s\t%s\n' "$(basename "$d")" "$(cut -f3 "$d/deadman.armed")"
done
for t in "$state"/toggles/*; do [ -f "$t" ] && printf 'toggle\t%s\t%s\n' "$(basename "$t")" "$(cat "$t")"; done
if [ -d "$state/journal" ]; then
  printf 'journals\t%s\t%s\n' "$(find "$state/journal" -mindepth 1 -maxdepth 1 -type d | wc -l | tr -d ' ')" \
    "$(du -sk "$state/journal" | cut -f1)"
fi
tail -n 5 "$state/audit.log" 2>/dev/null | sed 's/^/A\t/'
