#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Lesson 02 hello-pool: a pool of workers prints the seed's greetings.
# The starter fails: "prints each of the 100 greetings exactly once"

# shellcheck disable=SC2154 # status, output, g_* are set by lib/harness
load lib/harness

# greetings FIRST LAST: the lines the seed's fx prints for FIRST..LAST.
greetings() {
    local f=$BATS_TEST_TMPDIR/greetings-$1-$2
    if [ "$2" -ge "$1" ]; then
        seq "$1" "$2" | sed 's/.*/hello for &th time!/' >"$f"
    else
        : >"$f"
    fi
    echo "$f"
}

@test "prints each of the 100 greetings exactly once" {
    run_prog
    assert_lines_any_order "$(greetings 0 99)"
    assert_status 0
    assert_stderr_empty
}

@test "reproduces the seed's first program with -s 1 -n 9" {
    run_prog -s 1 -n 9
    assert_status 0
    assert_lines_any_order "$(greetings 1 9)"
}

@test "with one worker (-j 1) prints the greetings in task order" {
    run_prog -j 1 -n 50
    assert_status 0
    assert_lines_in_order "$(greetings 0 49)"
}

@test "more than one worker does the work when tasks take a moment (-w)" {
    run_prog -j 4 -n 20 -d 20 -w
    assert_status 0
    local pids
    pids=$(printf '%s\n' "${lines[@]}" | sed -nE 's/.* \(worker ([0-9]+)\)$/\1/p' | sort -u | wc -l)
    [ "$pids" -ge 2 ] || fail "expected lines tagged with 2 or more worker pids, got $pids:" "$output" "$(reproduce)"
    lines=("${lines[@]/ (worker [0-9]*)/}")
    assert_lines_any_order "$(greetings 0 19)"
}

@test "never tears or repeats a line: 20000 greetings from 8 workers" {
    run_prog -j 8 -n 20000
    assert_status 0
    assert_lines_any_order "$(greetings 0 19999)"
}

@test "each greeting exactly once also when stdout is a file" {
    run_prog --stdout-file -j 3 -n 30
    assert_status 0
    assert_lines_any_order "$(greetings 0 29)"
}

@test "holds at most WORKERS + 1 processes and reaps every worker" {
    run_prog -j 3 -n 30 -d 5
    assert_status 0
    assert_pool_of 3
}

@test "ends at once and quietly when the reader leaves (| head -3)" {
    run_prog --head 3 --deadline 5 -n 10000000
    assert_line_count 3
    assert_stderr_empty
    [ "$status" = 0 ] || [ "$status" = 141 ] ||
        fail "expected status 0 or 141 (128 + SIGPIPE), got $status" "$(reproduce)"
}

@test "with no tasks (-n 0) prints nothing and exits 0" {
    run_prog -n 0
    assert_status 0
    assert_output ""
}

@test "-h prints usage on stdout and exits 0" {
    run_prog -h
    assert_status 0
    assert_match '^usage: hello-pool' "$output" "stdout"
    assert_stderr_empty
}

@test "rejects bad arguments with one line on stderr and status 2" {
    local args
    for args in "-j 0" "-j abc" "-j -3" "-j 99999999" "-j" "-n -1" "-n 1x" "-x" "extra"; do
        # shellcheck disable=SC2086 # split args on purpose
        run_prog $args
        assert_usage_error
    done
}
