#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The harness itself: each classic mistake of tests/fixtures/broken.c is
# caught with the hint that names it, within the deadline, and nothing is
# left running; a correct program passes every check.

# shellcheck disable=SC2154 # status, output, g_* are set by lib/harness
load lib/harness

FIXTURE=$FORKLINGS_ROOT/build/tests/broken

setup_file() {
    make --no-print-directory -s -C "$FORKLINGS_ROOT" build/tests/guard &&
        cc -std=c11 -D_POSIX_C_SOURCE=200809L -o "$FIXTURE" \
            "$FORKLINGS_ROOT/tests/fixtures/broken.c"
}

# guarded_fails MODE [OPTIONS]: run the fixture in MODE through run_guarded,
# which must fail; leaves its messages in $output.
guarded_fails() {
    local mode=$1
    shift
    run run_guarded "$@" -- "$FIXTURE" "$mode"
    [ "$status" -ne 0 ] || fail "run_guarded passed broken mode '$mode':" "$output"
}

# The fixture's processes still running, by command line.
left_running() {
    pgrep -f "$FIXTURE" | wc -l
}

@test "a correct program passes every check" {
    run_guarded -- "$FIXTURE" good
    assert_status 0
    assert_lines_any_order "$(lines_file want banner "line from worker 0" \
        "line from worker 1" "line from worker 2")"
}

@test "the program sees fd 3 closed and SIGINT at its default" {
    trap '' INT # as a shell does for background jobs; guard undoes it
    run_guarded -- "$FIXTURE" fds
    trap - INT
    assert_output $'fd3 closed\nSIGINT default'
}

@test "a line printed before fork() without a flush is named as duplicated" {
    run_guarded -- "$FIXTURE" noflush
    run assert_lines_any_order "$(lines_file want banner "line from worker 0" \
        "line from worker 1" "line from worker 2")"
    [ "$status" -ne 0 ]
    [[ $output == *"fflush(NULL)"* ]] || fail "no hint about fflush:" "$output"
}

@test "children never waited for are reported as never reaped" {
    guarded_fails noreap
    [[ $output == *"3 child process(es) finished but were never reaped"* ]] ||
        fail "expected the zombie count and hint, got:" "$output"
    [[ $output == *"wait for every child"* ]]
}

@test "children that outlive the parent are reported, then killed" {
    guarded_fails leak
    [[ $output == *"3 process(es) outlived the program"* ]] ||
        fail "expected the survivor count, got:" "$output"
    [ "$(left_running)" = 0 ] || fail "a leaked child is still running"
}

@test "a hang is killed at the deadline and the stuck pipe read is named" {
    local t0=$SECONDS
    guarded_fails hang --deadline 1
    [ $((SECONDS - t0)) -le 5 ] || fail "the deadline of 1s took $((SECONDS - t0))s"
    [[ $output == *"did not finish within"* ]] || fail "no deadline message:" "$output"
    [[ $output == *"waiting to read from a pipe"* ]] || fail "the pipe read is not named:" "$output"
    [[ $output == *"close the ends you do not use"* ]]
    [ "$(left_running)" = 0 ]
}

@test "a wait loop that never stops is named as a busy loop" {
    guarded_fails spin --deadline 1
    [[ $output == *"running, not waiting"* ]] || fail "the busy process is not named:" "$output"
    [[ $output == *"ECHILD"* ]] || fail "no hint about ECHILD:" "$output"
}

@test "a child that does not _exit is stopped at the process cap" {
    guarded_fails noexit --cap 5
    [[ $output == *"started more than 5 processes"* ]] || fail "no cap message:" "$output"
    [[ $output == *"_exit()"* ]]
    [ "$(left_running)" = 0 ]
}

@test "lines written in pieces by several workers are named as torn" {
    run_guarded -- "$FIXTURE" torn
    local want=$BATS_TEST_TMPDIR/torn-want w i
    for w in 0 1 2; do
        for i in $(seq 0 199); do echo "line $((w * 1000 + i)) from worker $w"; done
    done >"$want"
    echo banner >>"$want"
    run assert_lines_any_order "$want"
    if [ "$status" = 0 ]; then
        skip "the scheduler kept every line whole this time"
    fi
    [[ $output == *"torn or mixed"* ]] || fail "no hint about torn lines:" "$output"
}

@test "lines lost to _exit() without a flush are named as missing" {
    run_guarded -- "$FIXTURE" lost
    run assert_lines_any_order "$(lines_file want banner "line from worker 0" \
        "line from worker 1" "line from worker 2")"
    [ "$status" -ne 0 ]
    [[ $output == *"missing (3)"* ]] || fail "expected 3 missing lines:" "$output"
    [[ $output == *"_exit() does not flush"* ]]
}

@test "--head closes stdout after N lines, as | head -N does" {
    run_guarded --head 2 -- "$FIXTURE" good
    assert_line_count 2
}
