# deploy revert: restore what the journal JOURNAL_ID recorded. argv: JOURNAL_ID
j=/var/lib/deploy/journal/$1
revert_journal "$j" && printf 'REVERTED\t%s\n' "$1"
