#!/usr/bin/env bash
# Moved: the card benchmark is tests/bench/kernel.sh (make bench-kmod, and
# part of make bench). Kept so that old command lines still work.
exec "$(dirname "$0")/../bench/kernel.sh" "$@"
