# deploy triggers: run the on_change commands of a phase's changed files, and
# record them so a revert re-runs them against the restored files.
# argv: JOURNAL_ID; stdin: one command a line. output: T cmd / F cmd rc + O lines
set -u
export LC_ALL=C
state=${DEPLOY_STATE:-/var/lib/deploy}
printf 'deploy-triggers\t1\n'
j=$state/journal/$1; tab=$(printf '\t')
mkdir -p "$j"
while IFS= read -r cmd; do
  printf '%s\n' "$cmd" >>"$j/triggers"
  if out=$(sh -c "$cmd" 2>&1 </dev/null); then
    printf 'T\t%s\n' "$cmd"
  else
    rc=$?
    printf 'F\t%s\t%s\n' "$cmd" "$rc"
    printf '%s\n' "$out" | tail -n 20 | sed "s/^/O${tab}/"
    exit 1
  fi
done
