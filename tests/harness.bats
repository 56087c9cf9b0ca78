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
    # Worker 0's first line is torn for certain (see broken.c): never whole.
    [ "$status" -ne 0 ] || fail "torn lines passed as whole ones"
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

@test "every worker is counted, however short its life: exact forks and peak" {
    # The workers print a line and _exit at once; the parent reaps them only
    # after its fork loop, so all three exist together: 4 processes at once.
    run_guarded -- "$FIXTURE" good
    assert_status 0
    [ "$g_exact" = 1 ] || fail "forkwatch did not count this run (inexact reason $g_inexact)"
    [ "$g_forks" = 3 ] || fail "expected 3 forks counted, got $g_forks"
    [ "$g_maxprocs" = 4 ] || fail "expected 4 processes at once (parent + 3), got $g_maxprocs"
    assert_pool_of 3
}

@test "a program that forks nothing is counted as forking nothing" {
    run_guarded -- "$FIXTURE" fds
    assert_status 0
    [ "$g_exact" = 1 ] && [ "$g_forks" = 0 ] && [ "$g_maxprocs" = 1 ] ||
        fail "expected exact=1 forks=0 maxprocs=1, got exact=$g_exact forks=$g_forks maxprocs=$g_maxprocs"
    assert_no_fork "it never forks"
    run assert_pool_of 3
    [ "$status" -ne 0 ] || fail "assert_pool_of 3 passed a program that forks nothing"
}

@test "a planned signal is sent at its time: SIGTERM at 0.3 s ends a sleep of 5 s" {
    run_guarded --kill TERM@0.3 -- sleep 5
    assert_status 143
    [ "$g_kick_ms" -ge 300 ] || fail "the signal was sent at $g_kick_ms ms, before its time"
    [[ $g_kicks == TERM@0.300:sent@* ]] || fail "the report says: $g_kicks"
}

@test "a signal planned after a line is sent once that line is out" {
    run_guarded --kill TERM@L2 -- sh -c 'echo one; echo two; exec sleep 5'
    assert_status 143
    assert_line_count 2
}

@test "a planned signal the program did not live to see fails as a test that could not run" {
    run run_guarded --kill TERM@5 -- "$FIXTURE" good
    [ "$status" -ne 0 ] || fail "a signal that was never sent passed"
    [[ $output == *"before the SIGTERM planned at 5.000 s"* ]] || fail "no such message:" "$output"
    [[ $output == *"could not run as planned"* ]] || fail "no such message:" "$output"
    run run_guarded --kill INT@L9 -- "$FIXTURE" good
    [[ $output == *"before the SIGINT planned after stdout line 9; it printed 4"* ]] ||
        fail "no message for a line kick:" "$output"
    run_guarded --tolerate unsent --kill TERM@5 -- "$FIXTURE" good
    assert_status 0
}

@test "the guard refuses bad options with one line, status 126" {
    local bad
    for bad in "-t abc" "-t -1" "-p 0" "-p 2x" "-H 0" "-k TERM" "-k NOPE@1" "-k TERM@x" "-w nan" "-E novalue"; do
        # shellcheck disable=SC2086 # split the option on purpose
        run "$GUARD" $bad -- true
        [ "$status" = 126 ] || fail "guard $bad: expected status 126, got $status"
        [[ $output == "guard: "* ]] && [ "${#lines[@]}" = 1 ] ||
            fail "guard $bad: expected one line starting 'guard: ', got:" "$output"
    done
}
