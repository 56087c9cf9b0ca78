# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# common.bash: the few helpers that both tests/lib/prove and tests/lib/mutate
# need (sourced by both, never run).

# as_regex TEXT: an extended regular expression that matches TEXT and
# nothing else (bats --filter takes one, matched against test names).
as_regex() {
    printf '^%s$' "$(sed 's/[][\.^$*+?(){}|/]/\\&/g' <<<"$1")"
}
