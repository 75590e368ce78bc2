# deploy dead-man revert for one deploy: runs from a timer on the host when
# the controller did not confirm in time. argv: DEPLOY_ID
# Restores every path of every phase of the deploy (newest first), re-runs
# the on_change commands and container recreates those files feed, releases
# the deploy's lock, and records the revert in the audit log.
id=$1
state=/var/lib/deploy; j=$state/journal/$id
[ -e "$j/confirmed" ] && exit 0
[ -e "$j/reverted" ] && exit 0
exec >>"$j/deadman.log" 2>&1
touch "$j/reverting"
echo "$(date -u +%FT%TZ) not confirmed: reverting deploy $id"
for p in $(ls -d "$j"/p* 2>/dev/null | sort -r); do
  revert_journal "$p"
done
for p in $(ls -d "$j"/p* 2>/dev/null | sort -r); do
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
printf '%s REVERTED deploy=%s reason=not-confirmed-by-the-controller-within-the-window\n' "$(date -u +%FT%TZ)" "$id" >>"$state/audit.log"
if grep -q "deploy=$id\$" "$state/lock/holder" 2>/dev/null; then rm -f "$state/lock/holder"; rmdir "$state/lock"; fi
echo "$(date -u +%FT%TZ) revert done"
