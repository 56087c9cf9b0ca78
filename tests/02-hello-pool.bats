#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Lesson 02 hello-pool: a pool of workers prints the seed's greetings.
# The starter fails: "prints each of the 100 greetings exactly once"

# shellcheck disable=SC2154,SC2030,SC2031 # status, output, g_* are set by lib/harness
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

# expect_workers: fail, saying where to look, when the run forked no worker
# at all (the starter's start_workers() stub); the missing lines' own hint,
# a flush before _exit(), would point at code that never ran.
expect_workers() {
    counts_are_exact || return 0
    [ "$g_forks" -gt 0 ] && return 0
    fail "expected greetings from the workers, but the parent forked none; stdout:" \
        "${output:-(empty)}" "stderr:" "$(show_stderr)" \
        "hint: start_workers() forks the pool (its TODO): no fork(), no worker," \
        "      and worker_main() never runs." "$(reproduce)"
}

@test "prints each of the 100 greetings exactly once" {
    run_prog
    expect_workers
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

@test "holds at most WORKERS + 1 processes and reaps every worker" {
    run_prog -j 3 -n 30 -d 5
    assert_status 0
    assert_pool_of 3
}

@test "forks every worker before it waits for one: the workers run at the same time" {
    # forkwatch counts a fork() before the child exists and a child only
    # once wait() has reaped it: a parent that forks its 4 workers before
    # its first wait() holds 5 processes at its peak, however the scheduler
    # runs them; one that waits inside the fork loop never holds more than 2.
    run_prog -j 4 -n 8
    assert_status 0
    counts_are_exact || return 0
    assert_pool_of 4
    [ "$g_maxprocs" = 5 ] && return 0
    fail "expected 5 processes at once (the parent and its 4 workers), there were at most $g_maxprocs." \
        "hint: start_workers() forks every worker first, and only then does reap_workers()" \
        "      wait for them: a wait() inside the fork loop lets each worker finish before" \
        "      the next one starts, and the pool runs one worker at a time." "$(reproduce)"
}

# expect_one_line LINE: status 1 and exactly LINE on stderr, with HINT...
# (the rest) for a failure.
expect_one_line() {
    local want=$1
    shift
    [ "$status" = 1 ] && [ ${#stderr_lines[@]} = 1 ] && [ "${stderr_lines[0]}" = "$want" ] &&
        return 0
    fail "expected status 1 and one line on stderr:" "  $want" \
        "got status $status, stderr:" "$(show_stderr)" "$@" "$(reproduce)"
}

@test "a full disk is an error: status 1 and one line for all the workers" {
    # stdout is /dev/full: every write() fails (ENOSPC), so fx() ends each
    # worker with WORKER_CANNOT_WRITE at its first greeting, whatever the
    # timing; judge_worker() counts them and main() says it once.
    run_prog --stdout /dev/full -j 4 -n 8
    expect_one_line "hello-pool: stdout: write error: 4 of 4 workers could not write their greetings" \
        "hint: a worker whose line cannot be written ends with _exit(WORKER_CANNOT_WRITE)" \
        "      (fx() checks fflush()); reap_workers() hands every status wait() gives" \
        "      it to judge_worker() and keeps what it returns: result = judge_worker(pid," \
        "      status, result). main() then reports the failed writes once."
}

@test "a closed stdout is an error, and no greeting goes into the POOL_TRACE file" {
    [ "${FORKLINGS_VALGRIND:-}" = 1 ] && skip "valgrind opens its log file on the closed descriptor 1, which then takes the program's stdout"
    # With fd 1 closed, open() would give the trace file number 1, and the
    # greetings would go into it: open_standard_fds() (given) puts
    # /dev/null, read-only, on fd 1 first, so each write fails with EBADF.
    export POOL_TRACE=$BATS_TEST_TMPDIR/run.trace
    run_prog --close 1 -j 2 -n 6
    expect_one_line "hello-pool: stdout: write error: 2 of 2 workers could not write their greetings" \
        "hint: with stdout closed every greeting is lost: the program must say so." \
        "      main() calls open_standard_fds() (given) before trace_open()." || return 1
    ! grep -q hello "$POOL_TRACE" ||
        fail "greetings went into the trace file $POOL_TRACE:" "$(head -3 "$POOL_TRACE")" \
            "hint: open() returns the lowest free descriptor: 1, when stdout is closed." \
            "      Keep open_standard_fds() (given) as the first call of main()." \
            "$(reproduce)"
}

@test "runs as usual with stdin or stderr closed" {
    local fd
    for fd in 0 2; do
        run_prog --close "$fd" -j 3 -n 30
        assert_status 0
        assert_lines_any_order "$(greetings 0 29)"
    done
}

@test "the workers end with their parent: SIGTERM to the parent alone leaves none printing" {
    # A million tasks of 1 ms: the workers have work for minutes when the
    # parent is killed after the first greeting. die_with_parent() (given)
    # has the kernel kill each worker when the parent dies; without it they
    # go on printing, and the census finds them after a second. The parent
    # cannot reap workers after its death: their zombies are the guard's.
    run_prog --kill TERM@L1 --linger 1 --tolerate unreaped --tolerate survivors \
        -n 1000000 -d 1
    [ "$g_survivors" = 0 ] ||
        fail "$g_survivors worker(s) still ran a second after their parent was killed" \
            "(SIGTERM to the parent alone, after the first greeting)." \
            "hint: worker_main() starts with die_with_parent(parent_pid) (given): keep it," \
            "      and fork the workers after main() has saved parent_pid." \
            "$(reproduce)" || return 1
    [ "$status" = 143 ] ||
        fail "expected status 143 (128 + SIGTERM), the parent killed; got $status" "$(reproduce)" ||
        return 1
    assert_stderr_empty
}

@test "when fork() fails, says how many workers started, and only their greetings come out" {
    # fork() fails (EAGAIN, as under a low `ulimit -u`) once 3 have
    # succeeded: workers 0, 1 and 2 run their shares, tasks 0, 1, 2, 10, ...
    run_prog --fork-fails-after 3 -j 10 -n 100
    expect_one_line "hello-pool: fork: Resource temporarily unavailable: started 3 of 10 workers, so only their greetings come out" \
        "hint: when fork() returns -1, start_workers() returns at once the number started," \
        "      with errno untouched: main() reports it." || return 1
    assert_pool_of 3
    seq 0 99 | awk '$1 % 10 < 3 { print "hello for " $1 "th time!" }' >"$BATS_TEST_TMPDIR/three"
    assert_lines_any_order "$BATS_TEST_TMPDIR/three"
}

@test "sends each greeting the moment its task is done, not in a block at the end" {
    # One worker, 100 tasks of 20 ms; the guard reads the first line and
    # then closes the pipe, as `| head -1` does. A greeting flushed as it
    # is printed reaches the pipe while 99 tasks are still to run: the
    # worker's next greeting after the close meets the closed pipe, the
    # worker dies of SIGPIPE and the program exits 141. Greetings kept in
    # the stdio buffer (2,090 bytes, less than its 4 KiB) reach the pipe
    # together, in one write() when the worker ends: that write succeeds,
    # the worker exits 0 and so does the program. The guard closes the pipe
    # in the step that reads the line, and the worker has 99 tasks left
    # then: some 2 s (and still 99 sleeps of a millisecond or more where
    # the injection stage's signals cut them short), a margin of hundreds
    # of times what the guard needs.
    run_prog --head 1 -j 1 -n 100 -d 20
    assert_line_count 1
    assert_stderr_empty
    [ "$status" = 141 ] && return 0
    fail "expected status 141 (128 + SIGPIPE): the reader left after the first greeting," \
        "while the worker still had a task to run, so its next greeting met the closed" \
        "pipe. Got status $status." \
        "hint: either the greetings arrived together when the worker ended (flush stdout" \
        "      after each line, as fx() does, and end the worker with _exit(): into a" \
        "      pipe, printf() keeps lines in a buffer until it fills or the process" \
        "      exits), or the worker's death was not passed on: reap_workers() keeps what" \
        "      judge_worker() returns for each status wait() gives it." "$(reproduce)"
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

@test "ends at once and quietly when the reader leaves (| head -3)" {
    # Ten million tasks of 1 ms each: after the third line, a worker that
    # dies of SIGPIPE at its next greeting ends within milliseconds, while
    # one that carried on would need 1,000,000 tasks x 1 ms = 1,000 s, two
    # hundred times the deadline. Every worker still has tasks left when
    # the reader goes, so every one of them meets SIGPIPE: a message about
    # any of them would show on stderr.
    run_prog --head 3 --deadline 5 -n 10000000 -d 1
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
