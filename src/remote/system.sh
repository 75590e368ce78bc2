# deploy system: a phase's operations that are not files (packages, users,
# units, live sysctl values, commands), each an argv run without a shell.
# argv: JOURNAL_ID. stdin, tab-separated, one a line:
#   U ARGV...      an undo of the next operation
#   R COMMAND      a command to run again after a revert restored the files
#   O LABEL ARGV...  the operation: its undos are journaled (write-ahead)
#                    before it runs, its R commands go to the triggers file
# output: D LABEL (done), or F LABEL RC then O lines (its last output) and
# exit 1; E WHAT WHY when the journal cannot be written.
set -u
export LC_ALL=C
state=${DEPLOY_STATE:-/var/lib/deploy}
printf 'deploy-system\t1\n'
j=$state/journal/$1
tab=$(printf '\t'); nl='
'
if ! mkdir -p "$j/undo"; then printf 'E\tjournal\tcannot write %s\n' "$j"; exit 3; fi
# undo files are numbered on from earlier calls of this phase (a0, a1, ...)
n=$(find "$j/undo" -type f | wc -l | tr -d ' ')
undo=""; rerun=""
while IFS= read -r line; do
  kind=${line%%"$tab"*}; rest=${line#*"$tab"}
  case $kind in
    U) undo="$undo$rest$nl";;
    R) rerun="$rerun$rest$nl";;
    O) label=${rest%%"$tab"*}; cmd=${rest#*"$tab"}
       if [ -n "$undo" ]; then
         if ! { printf '%s' "$undo" >"$j/undo/a$n" &&
                printf 'A\t%s\t-\ta%s\t-\n' "$label" "$n" >>"$j/journal"; }; then
           printf 'E\tjournal\tcannot journal %s in %s\n' "$label" "$j"; exit 3
         fi
         u=$n; n=$((n + 1))
       else u=""; fi
       if [ -n "$rerun" ]; then printf '%s' "$rerun" >>"$j/triggers"; fi
       undo=""; rerun=""
       if out=$(run_argv "$cmd" 2>&1 </dev/null); then
         printf 'D\t%s\n' "$label"
       else
         rc=$?
         # half done at most: its undo may find nothing to undo
         if [ -n "$u" ]; then sed "s/^/?$tab/" "$j/undo/a$u" >"$j/undo/a$u.tmp" && mv "$j/undo/a$u.tmp" "$j/undo/a$u"; fi
         printf 'F\t%s\t%s\n' "$label" "$rc"
         printf '%s\n' "$out" | tail -n 20 | sed "s/^/O${tab}/"
         exit 1
       fi;;
  esac
done
printf 'DONE\n'
