# Shared by the demo parts: show each command before running it.
show() {
    printf '\n\033[1m$ %s\033[0m\n' "$*"
    "$@"
}
# Like show, for a command that is expected to fail; prints its status.
show_refused() {
    printf '\n\033[1m$ %s\033[0m\n' "$*"
    set +e
    "$@"
    local rc=$?
    set -e
    printf '(exit status %d: refused, as it should be)\n' "$rc"
    [ "$rc" -ne 0 ] || { echo "demo: expected a refusal" >&2; exit 1; }
}
section() { printf '\n\033[1;34m== %s ==\033[0m\n' "$*"; }
