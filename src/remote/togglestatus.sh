# deploy toggle status: what the host itself says. argv: TOGGLE PATH...
# output: state, pending reverts, hashes of the toggle's files, rules in force.
set -u
export LC_ALL=C
state=${DEPLOY_STATE:-/var/lib/deploy}
printf 'deploy-togglestatus\t1\n'
name=$1; shift
printf 'state\t%s\n' "$(cat "$state/toggles/$name" 2>/dev/null || echo unset)"
for d in "$state"/journal/*/; do
  [ -f "$d/deadman.armed" ] || continue
  [ -e "$d/confirmed" ] || [ -e "$d/reverted" ] && continue
  printf 'pending\t%s\t%s\n' "$(basename "$d")" "$(cut -f3 "$d/deadman.armed")"
done
for p do printf 'H\t%s\t%s\n' "$p" "$(sha256sum <"$p" 2>/dev/null | cut -d' ' -f1)"; done
if command -v nft >/dev/null 2>&1; then
  nft list ruleset 2>/dev/null | grep -E 'dport|policy' | sed 's/^[[:space:]]*/R\t/'
fi
