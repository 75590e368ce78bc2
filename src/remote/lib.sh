# Shared by the remote scripts.
set -u
export LC_ALL=C
state=${DEPLOY_STATE:-/var/lib/deploy}
# run_argv LINE: run the tab-separated argv LINE, no shell in between. A
# word holding a control character (a script's newlines) comes as \001
# and its base64, which no plain word starts with, and is decoded here.
run_argv() {
  # shellcheck disable=SC2086 # split on tabs only, with globbing off
  (_t=$(printf '\t'); _m=$(printf '\001'); IFS=$_t; set -f; set -- $1
   case $_m$_t$* in *"$_t$_m"*)
     _n=$#
     while [ "$_n" -gt 0 ]; do
       _a=$1; shift; _n=$((_n - 1))
       case $_a in "$_m"*) _a=$(printf '%s' "${_a#"$_m"}" | base64 -d && printf x) || exit 126; _a=${_a%x};; esac
       set -- "$@" "$_a"
     done;;
   esac
   "$@")
}
# revert_journal DIR: undo, newest first, every change recorded in
# DIR/journal (lines: KIND PATH WAS INDEX META). Every path that cannot be
# restored is printed as `X<TAB>PATH<TAB>WHY` and counted; returns 0 only
# when everything was restored. The journal is renamed journal.reverted
# either way, with DIR/revert-incomplete listing what was not restored.
revert_journal() {
  _j=$1; _tab=$(printf '\t'); _failed=0
  # the temp-file suffix apply.sh used for this journal (see its tmpid)
  _t=$(printf '%s' "${_j#"$state"/journal/}" | tr '/' '-')
  [ -f "$_j/journal" ] || return 0
  # a file, not a pipe: a pipe would run the loop in a subshell and lose the count
  tac "$_j/journal" >"$_j/journal.rev" || { printf 'X\t%s\tcannot read the journal\n' "$_j"; return 1; }
  : >"$_j/revert-incomplete"
  while IFS="$_tab" read -r kind path was n meta; do
    _why=""
    case $kind in
      F) rm -f "$(dirname "$path")/.$(basename "$path").deploy-$_t"  # cut off before its rename
         if [ "$was" = absent ]; then rm -f "$path" || _why="cannot remove the file this deploy created"
         elif ! { cp -p "$_j/old/$n" "$path.deploy-rb" && mv -f "$path.deploy-rb" "$path"; }; then
           rm -f "$path.deploy-rb" 2>/dev/null; _why="cannot put the old file back"
         fi;;
      D) if [ "$was" = absent ] && [ -d "$path" ]; then rmdir "$path" 2>/dev/null || _why="directory this deploy created is not empty"; fi;;
      M) # shellcheck disable=SC2086 # META is "MODE UID GID"
         set -- $meta
         { chmod "$1" "$path" && chown "$2:$3" "$path"; } || _why="cannot restore owner/mode $2:$3 $1";;
      R) cp -a "$_j/old/$n" "$path" || _why="cannot restore the removed path";;
      # a link: removed if this deploy made it, else pointed back (META is
      # its old target), by a rename over it
      L) rm -f -- "$path.deploy-$_t"
         if [ "$was" = absent ]; then { [ ! -L "$path" ] || rm -f -- "$path"; } || _why="cannot remove the link this deploy made"
         elif ! { ln -sfn -- "$meta" "$path.deploy-rb" && mv -Tf -- "$path.deploy-rb" "$path"; }; then
           rm -f -- "$path.deploy-rb"; _why="cannot point the link back to $meta"
         fi;;
      # new files staged beside a directory on another filesystem
      T) rm -rf -- "$path" || _why="cannot remove the staged files";;
      # an operation on the host (package, user, unit...): its undo argvs,
      # journaled before it ran; `?` marks one whose operation failed, so
      # it may have nothing to undo
      A) while IFS= read -r _l; do
           case $_l in
             "?$_tab"*) run_argv "${_l#?"$_tab"}" </dev/null >/dev/null 2>&1 || true;;
             *) run_argv "$_l" </dev/null >/dev/null 2>&1 || _why="undo failed: $(printf '%s' "$_l" | tr '\t' ' ')";;
           esac
         done <"$_j/undo/$n";;
    esac
    if [ -n "$_why" ]; then
      _failed=$((_failed + 1))
      printf 'X\t%s\t%s\n' "$path" "$_why"
      printf '%s\t%s\n' "$path" "$_why" >>"$_j/revert-incomplete"
    fi
  done <"$_j/journal.rev"
  rm -f "$_j/journal.rev"
  mv "$_j/journal" "$_j/journal.reverted"
  [ "$_failed" = 0 ] && rm -f "$_j/revert-incomplete"
  [ "$_failed" = 0 ]
}
# subst TEXT REPLACEMENT: TEXT with every %s replaced (no sed: the
# replacement is data, never a pattern)
subst() {
  _r=""; _t=$1
  while :; do
    case $_t in
      *%s*) _r="$_r${_t%%"%s"*}$2"; _t=${_t#*"%s"};;
      *) break;;
    esac
  done
  printf '%s' "$_r$_t"
}
# mounts PATH LIST: `MOUNT<TAB>PATH` for PATH, then for each path of the
# file LIST: the mount it is on (the /proc/self/mountinfo line whose mount
# point is the longest prefix of its real path; of equal ones the last, a
# mount on top of another). A bind mount of the same filesystem has the
# same st_dev, yet rename(2) and link(2) across it fail as across two
# filesystems: only the mount tells. `?` when that cannot be read.
mounts() {
  # shellcheck disable=SC2094 # LIST is only read
  xargs -d '\n' realpath -m -- "$1" <"$2" | awk -v list="$2" -v first="$1" '
    function unesc(s) { gsub(/\\040/, " ", s); gsub(/\\011/, "\t", s); gsub(/\\012/, "\n", s); gsub(/\\134/, "\\", s); return s }
    BEGIN { while ((getline l < "/proc/self/mountinfo") > 0) { split(l, f, " "); mp[++n] = unesc(f[5]); id[n] = f[1] } }
    FILENAME == list { orig[++k] = $0; next }
    { best = "?"; bl = -1
      for (x = 1; x <= n; x++) { m = mp[x]; l = length(m)
        if ((m == "/" || $0 == m || substr($0, 1, l + 1) == m "/") && l >= bl) { best = id[x]; bl = l } }
      print best "\t" (FNR == 1 ? first : orig[FNR - 1]) }' "$2" -
}
# free_kib DIR: what the filesystem of DIR has free for root, in KiB
free_kib() { df -Pk -- "$1" | awk 'NR == 2 { print $4 }'; }
