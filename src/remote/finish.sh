# deploy finish: append the audit line and release our lock. argv: HOLDER AUDIT_LINE
finish_lock "$1" "$2"
