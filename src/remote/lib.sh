# Shared by the remote scripts. revert_journal DIR: undo, newest first, every
# change recorded in DIR/journal (lines: KIND PATH WAS INDEX META).
revert_journal() {
  _j=$1; _tab=$(printf '\t')
  # the temp-file suffix apply.sh used for this journal (see its tmpid)
  _t=$(printf '%s' "${_j#/var/lib/deploy/journal/}" | tr '/' '-')
  [ -f "$_j/journal" ] || return 0
  tac "$_j/journal" | while IFS="$_tab" read -r kind path was n meta; do
    case $kind in
      F) rm -f "$(dirname "$path")/.$(basename "$path").deploy-$_t"  # cut off before its rename
         if [ "$was" = absent ]; then rm -f "$path"; else cp -p "$_j/old/$n" "$path.deploy-rb" && mv -f "$path.deploy-rb" "$path"; fi;;
      D) [ "$was" = absent ] && rmdir "$path" 2>/dev/null;;
      M) set -- $meta; chmod "$1" "$path"; chown "$2:$3" "$path";;
      R) cp -a "$_j/old/$n" "$path";;
    esac
  done
  mv "$_j/journal" "$_j/journal.reverted"
}
