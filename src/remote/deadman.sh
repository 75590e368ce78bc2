# deploy dead-man revert for one deploy: runs from a timer on the host when
# the controller did not confirm in time. argv: DEPLOY_ID
# Restores every path of every phase of the deploy (newest phase first, by
# the number of its journal p<N>, never by text: p10 comes after p2), re-runs the
# on_change commands and container recreates those files feed, releases the
# deploy's lock, and records REVERTED, or REVERT-INCOMPLETE with the paths it
# could not restore, in the audit log.
set -u
export LC_ALL=C
state=${DEPLOY_STATE:-/var/lib/deploy}
id=$1
j=$state/journal/$id
[ -e "$j/confirmed" ] && exit 0
[ -e "$j/reverted" ] && exit 0
exec >>"$j/deadman.log" 2>&1
touch "$j/reverting"
echo "$(date -u +%FT%TZ) not confirmed: reverting deploy $id"
failed=0
# shellcheck disable=SC2012 # journal names are ours: p<N>, no odd characters
phases=$(ls "$j" | sed -n 's/^p\([0-9][0-9]*\)$/\1/p' | sort -rn)
for n in $phases; do
  p=$j/p$n
  revert_journal "$p" || failed=$((failed + $(wc -l <"$p/revert-incomplete")))
done
for n in $phases; do
  p=$j/p$n
  if [ -f "$p/triggers" ]; then
    while IFS= read -r cmd; do echo "re-running: $cmd"; sh -c "$cmd" </dev/null || echo "failed: $cmd"; done <"$p/triggers"
  fi
  for m in "$p"/compose-revert.*; do
    [ -f "$m" ] && sh "$j/compose.sh" <"$m"
  done
done
# an upload cut off mid-way leaves its pieces here: nothing uses them now
rm -rf "$j"/p*/new
touch "$j/reverted"
if [ "$failed" = 0 ]; then
  printf '%s REVERTED deploy=%s reason=not-confirmed-by-the-controller-within-the-window\n' "$(date -u +%FT%TZ)" "$id" >>"$state/audit.log"
else
  printf '%s REVERT-INCOMPLETE deploy=%s reason=not-confirmed-by-the-controller-within-the-window paths_not_restored=%s\n' \
    "$(date -u +%FT%TZ)" "$id" "$failed" >>"$state/audit.log"
fi
if grep -q "deploy=$id\$" "$state/lock/holder" 2>/dev/null; then rm -f "$state/lock/holder"; rmdir "$state/lock"; fi
echo "$(date -u +%FT%TZ) revert done ($failed paths not restored)"
