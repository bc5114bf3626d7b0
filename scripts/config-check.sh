#!/usr/bin/env bash
# config-check.sh CONFIG FRAGMENT...: every line of each Kconfig fragment
# took in CONFIG (merge_config.sh and olddefconfig only warn when Kconfig
# drops a request because of a missing dependency). Prints each line that
# did not take; status 1 if any.
set -euo pipefail
cfg=$1; shift
bad=0
for f in "$@"; do
    while IFS= read -r line; do
        case "$line" in
            CONFIG_*=*) grep -qxF "$line" "$cfg" || { echo "kernel config: '$line' from $f did not take" >&2; bad=1; } ;;
            "# CONFIG_"*" is not set") opt=${line#\# }; opt=${opt%% *}
                if grep -q "^$opt=" "$cfg"; then echo "kernel config: $opt from $f should be unset" >&2; bad=1; fi ;;
        esac
    done <"$f"
done
exit $bad
