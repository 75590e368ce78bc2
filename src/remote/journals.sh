# deploy journals: what a host's deploy journals hold, for `deploy rollback`.
# argv: ID OLDMAX (ID `-`: the newest journal)
# output: J ID (every journal, oldest first); target ID, or missing ID;
# reverted (the host reverted it already); L PHASE KIND PATH WAS N META (its
# journal lines, phases rolled back left out); O PHASE N MODE UID GID BASE64
# (or -SIZE over OLDMAX): the saved old file N; T LATER_ID PATH (paths later
# deploys changed); end.
set -u
export LC_ALL=C
state=${DEPLOY_STATE:-/var/lib/deploy}
tab=$(printf '\t')
printf 'deploy-journals\t1\n'
# journal names are deploy ids: digits, T, - and hex, nothing to quote
# shellcheck disable=SC2012
ids=$(ls "$state/journal" 2>/dev/null | sort)
for i in $ids; do printf 'J\t%s\n' "$i"; done
id=$1
[ "$id" = - ] && id=$(printf '%s\n' "$ids" | tail -n 1)
j=$state/journal/$id
if [ -z "$id" ] || [ ! -d "$j" ]; then printf 'missing\t%s\nend\n' "$id"; exit 0; fi
printf 'target\t%s\n' "$id"
[ -e "$j/reverted" ] && printf 'reverted\n'
for p in "$j"/p*/; do
  [ -f "$p/journal" ] || continue
  pn=$(basename "$p")
  while IFS="$tab" read -r kind path was n meta; do
    printf 'L\t%s\t%s\t%s\t%s\t%s\t%s\n' "$pn" "$kind" "$path" "$was" "$n" "$meta"
    if [ "$kind" = F ] && [ "$was" = file ] && [ -f "$p/old/$n" ]; then
      size=$(stat -c %s "$p/old/$n")
      printf 'O\t%s\t%s\t%s\t' "$pn" "$n" "$(stat -c '%a %u %g' "$p/old/$n" | tr ' ' '\t')"
      if [ "$size" -le "$2" ]; then base64 -w0 "$p/old/$n"; printf '\n'; else printf -- '-%s\n' "$size"; fi
    fi
  done <"$p/journal"
done
for i in $(printf '%s\n' "$ids" | sed -n "/^$id\$/,\$p" | tail -n +2); do
  for f in "$state/journal/$i"/p*/journal; do
    [ -f "$f" ] && cut -f2 "$f" | sed "s/^/T${tab}$i${tab}/"
  done
done
printf 'end\n'
