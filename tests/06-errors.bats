#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Lesson 06 errors: a failed task reaches the caller as an error that names
# it, promptly, and no process is left: never a hang.
# The starter fails: "maps Instance over 0..N-1 and prints the list when nothing fails"

# shellcheck disable=SC2154 # status, output, g_* are set by lib/harness
load lib/harness

# The tasks where each test makes a failure happen, in a map of 10 tasks.
POSITIONS=(0 5 9)

# instances N: the list the program prints for N tasks, Instance(i) =
# Multi(i, 2, 3) = 3 * (3i + 2) for i in 0..N-1, as Python prints a list.
instances() {
    seq 0 $(($1 - 1)) | awk '{ printf (NR > 1 ? ", %d" : "[%d"), 3 * (3 * $1 + 2) }
        END { print (NR ? "]" : "[]") }'
}

# run_errors ARGS: run the program with a deadline that no test needs.
run_errors() {
    run_prog --deadline 20 "$@"
}

# assert_one_error REGEX: the map failed as a whole: status 1, no list on
# stdout, and one line on stderr, which matches REGEX.
assert_one_error() {
    assert_status 1 || return 1
    [ -z "$output" ] ||
        fail "expected no list on stdout (the map failed), got:" "$output" "$(reproduce)" || return 1
    local errs
    errs=$(grep -v ': -v: ' <<<"$stderr" || true)
    [ "$(grep -c . <<<"$errs")" = 1 ] ||
        fail "expected exactly one error line on stderr, got:" "${errs:-(none)}" "$(reproduce)" || return 1
    [[ $errs =~ $1 ]] && return 0
    fail "the error line is not the expected one." "expected (a pattern): $1" \
        "actual:               $errs" "$(reproduce)"
}

# reported_task: the task number the error line names.
reported_task() {
    grep -v ': -v: ' <<<"$stderr" | sed -nE 's/^errors: task ([0-9]+): .*/\1/p'
}

# After a failed test: where to look. A test sets HINT for its own kind of
# failure; a program that hung gets the hint about hangs, or the test's own
# HANG_HINT when it sets one.
lesson_teardown() {
    [ -z "${BATS_TEST_COMPLETED:-}" ] || return 0
    if [ "${g_timeout:-0}" = 1 ] && [ -n "${HANG_HINT:-}" ]; then
        printf '%s\n' "$HANG_HINT" >&2
    elif [ "${g_timeout:-0}" = 1 ]; then
        printf '%s\n' \
            "hint: a worker that dies never sends its result: its result pipe gives" \
            "      end-of-file instead (read() returns 0), and poll() reports it." \
            "      A task that hangs sends nothing at all: poll() must wait no longer" \
            "      than the earliest deadline (poll_timeout()), then expire_late_task()." >&2
    elif [ -n "${HINT:-}" ]; then
        printf '%s\n' "$HINT" >&2
    fi
}

DEATH_HINT="hint: when a busy worker's result pipe gives end-of-file, the worker has
      died: worker_died() reaps it and reads how it died from the status,
      WIFSIGNALED() and WTERMSIG(), or WEXITSTATUS()."

@test "maps Instance over 0..N-1 and prints the list when nothing fails" {
    HINT="hint: collect_results() is where every result comes back: it waits (poll())
      on the result pipes of the busy workers and receives from each one that
      is ready. The starter's stub fails every map that has an item."
    run_errors -j 3 10
    assert_status 0
    assert_stderr_empty
    assert_output "$(instances 10)"
    run_errors -j 1 -d 10 7
    assert_status 0
    assert_output "$(instances 7)"
    run_errors 0
    assert_status 0
    assert_output "[]"
}

@test "a task whose function fails is reported with its number and the reason" {
    HINT="hint: apply_task() marks the result record failed when the function called
      pool_task_error(); receive_result() turns a record with failed >= 0
      into a POOL_FAILED error."
    local t
    for t in "${POSITIONS[@]}"; do
        run_errors -j 3 -d 20 -f "$t" 10
        assert_one_error "^errors: task $t: the function failed on x = $t \(-f\)$"
    done
}

@test "a worker killed by SIGSEGV is reported with the task, its pid and the signal" {
    HINT=$DEATH_HINT
    local t
    for t in "${POSITIONS[@]}"; do
        run_errors -j 3 -d 20 -s "$t" 10
        assert_one_error "^errors: task $t: worker [0-9]+ killed by signal 11 \(Segmentation fault\)$"
    done
}

@test "a worker killed by SIGKILL is reported with the task, its pid and the signal" {
    HINT=$DEATH_HINT
    local t
    for t in "${POSITIONS[@]}"; do
        run_errors -j 3 -d 20 -k "$t" 10
        assert_one_error "^errors: task $t: worker [0-9]+ killed by signal 9 \(Killed\)$"
    done
}

@test "a task that calls exit() is reported with the task, its pid and the status" {
    HINT=$DEATH_HINT
    local t
    for t in "${POSITIONS[@]}"; do
        run_errors -j 3 -d 20 -x "$t" 10
        assert_one_error "^errors: task $t: worker [0-9]+ exited with status 3$"
    done
}

@test "a task that hangs past the deadline (-t) is killed and reported" {
    local t ms
    ms=$(scaled 300 | cut -d. -f1)  # slowed down, the other tasks take longer
    for t in "${POSITIONS[@]}"; do
        run_prog --deadline 5 -j 3 -d 20 -t "$ms" -H "$t" 10
        assert_one_error "^errors: task $t: worker [0-9]+ timed out after $ms ms and was killed$"
    done
}

@test "several failures at once: one error, naming one of the failed tasks" {
    # 4 workers, tasks of 100 ms: tasks 0-3 end well, then tasks 4-7 fail
    # together, each its own way. The one reported must be one of them, with
    # its own kind of failure.
    without_leak_tracer     # task 7's worker may be killed while exit() runs
    run_errors -j 4 -d 100 -f 4 -s 5 -k 6 -x 7 12
    assert_one_error "^errors: task [4-7]: "
    local -A want=([4]="the function failed on x = 4 \(-f\)"
        [5]="worker [0-9]+ killed by signal 11 \(Segmentation fault\)"
        [6]="worker [0-9]+ killed by signal 9 \(Killed\)"
        [7]="worker [0-9]+ exited with status 3")
    local t
    t=$(reported_task)
    assert_match "^errors: task $t: ${want[$t]}$" "$stderr" "the error of task $t"
}

@test "every task failing: the map stops at the first failures, later tasks never run" {
    local kind last
    without_leak_tracer     # -x workers are killed while exit() runs
    for kind in -f -s -k -x; do
        run_errors -v -j 3 -d 20 "$kind" 0-9 10
        assert_one_error "^errors: task [0-2]: "
        # With -v each task says when it fails: only tasks 0-2 may have run.
        last=$(sed -nE 's/.* fails task ([0-9]+) .*/\1/p' <<<"$stderr" | sort -n | tail -1)
        [ "${last:-0}" -le 2 ] ||
            fail "task $last ran, after the first failures: the map went on (-v lines):" \
                "$(grep ' fails task ' <<<"$stderr")" "$(reproduce)" || return 1
    done
}

@test "with one worker (-j 1), each failure is reported at its task and stops the map" {
    local last
    # Every task from 2 on fails, and with -v each says so as it fails. With
    # one worker the parent sends task 3 only after task 2's result, which
    # is its failure: so no task after 2 may say it ran. A property, not a
    # time: it holds on a machine however busy.
    run_errors -v -j 1 -d 10 -f 2-19 20
    assert_one_error "^errors: task 2: the function failed on x = 2 \(-f\)$"
    last=$(sed -nE 's/.* fails task ([0-9]+) .*/\1/p' <<<"$stderr" | sort -n | tail -1)
    [ "${last:-2}" -le 2 ] ||
        fail "task $last ran after task 2 had failed: the map went on (-v lines):" \
            "$(grep ' fails task ' <<<"$stderr")" \
            "hint: stop the map at the first failed result: send no task after it." \
            "$(reproduce)" || return 1
    run_errors -j 1 -d 10 -s 3 -k 4 10
    assert_one_error "^errors: task 3: worker [0-9]+ killed by signal 11 "
    run_prog --deadline 5 -j 1 -d 10 -x 4 -H 5 10
    assert_one_error "^errors: task 4: worker [0-9]+ exited with status 3$"
}

# latency_ms: from the -v lines on stderr, the time from the worker's failure
# to the end of the map, every worker reaped.
latency_ms() {
    local died over
    died=$(sed -nE 's/^errors: -v: ([0-9.]+) ms: worker .* fails task .*/\1/p' <<<"$stderr" | head -1)
    over=$(sed -nE 's/^errors: -v: ([0-9.]+) ms: the map is over.*/\1/p' <<<"$stderr")
    [ -n "$died" ] && [ -n "$over" ] && awk -v a="$died" -v b="$over" 'BEGIN { printf "%d\n", b - a }'
}

@test "a worker killed in the middle of a map is reported within a second, with no survivor" {
    local kind latency
    # 40 tasks of 500 ms on 4 workers: the whole map takes 5 s. Task 6
    # fails at about 1 s. Python's Pool.map would wait for ever. Both ends
    # of the latency come from the program's own clock (-v): from the
    # moment the worker dies to the moment every worker is reaped, whatever
    # the time it took to start. Stopped at once, that is a few ms; a map
    # that goes on runs the 32 tasks left, 11 rounds of 500 ms on the 3
    # workers left: 5500 ms, and a sleep never ends early.
    for kind in -k -s; do
        run_errors -v -j 4 -d 500 "$kind" 6 40
        assert_one_error "^errors: task 6: worker [0-9]+ killed by signal "
        slow_mode && continue   # the guard has found no survivor already
        latency=$(latency_ms) ||
            fail "expected the -v lines with the times on stderr, got:" "$(show_stderr)" || return 1
        [ "$latency" -lt 1000 ] ||
            fail "the map ended $latency ms after the worker died ($kind); expected < 1000." \
                "hint: a dead worker's result pipe reads end-of-file at once: poll()" \
                "      for every busy worker's result pipe, and stop at the first failure." \
                "$(reproduce)" || return 1
    done
}

@test "a failure stops the other busy workers at once, even tasks that would never end" {
    # Tasks 0 and 2 hang (no -t: for ever); task 1's worker is killed at
    # about 50 ms. The parent must stop the two others with SIGTERM, not
    # wait for them: a wait would never end. No time to measure: a wrong
    # pool hangs, and the deadline is 100 times what a right one needs.
    HANG_HINT="hint: after the first failure the map stops every worker: pool_terminate()
      sends each busy worker SIGTERM before it waits for them. A worker
      whose task never ends is waited for for ever otherwise."
    run_prog --deadline 5 -j 3 -d 50 -H 0,2 -k 1 6
    assert_one_error "^errors: task 1: worker [0-9]+ killed by signal 9 \(Killed\)$"
}

@test "a task past its deadline is killed on time, while the other worker keeps sending results" {
    local latency
    # Task 0 hangs; the other worker runs tasks 1 to 599, of 10 ms each,
    # and its results wake poll() up every 10 ms. poll() must wait only
    # until the earliest deadline, what is left of it: then task 0 is killed
    # about 500 ms after it was sent, and the map is over. A poll() that
    # waits the whole -t each time never times out while results come, so
    # task 0 runs until the 599 others are done: 5990 ms at the very least.
    # 10 ms tasks are 50 times shorter than -t: none of them times out.
    HINT="hint: poll() waits no longer than what is left until the earliest deadline of
      a busy worker (poll_timeout()); when it times out, expire_late_task()
      kills the task that has run longest."
    run_errors -v -j 2 -d 10 -t 500 -H 0 600
    assert_one_error "^errors: task 0: worker [0-9]+ timed out after 500 ms and was killed$"
    slow_mode && return 0
    latency=$(latency_ms) ||
        fail "expected the -v lines with the times on stderr, got:" "$(show_stderr)" || return 1
    # From task 0's -v line (10 ms after it was sent) to the end of the map:
    # about 490 ms when the deadline is kept, at least 5980 when it is not.
    [ "$latency" -lt 2500 ] ||
        fail "task 0 was killed $latency ms after it began to hang; expected about 490" \
            "(its deadline, -t 500, counts from when it was sent, 10 ms earlier)." \
            "hint: the other worker's results wake poll() up every 10 ms: a poll() that" \
            "      waits the whole -t each time never times out while they come." \
            "$(reproduce)" || return 1
}

# ---- the fault matrix: killed, stopped, closed, full, limited --------------

@test "no worker outlives its parent killed in the middle of a task" {
    # Two workers, one task of 5 s each: SIGKILL to the parent while both
    # sleep in it. No clean-up of the parent can run: only the kernel's
    # parent-death signal ends the workers within the second of --linger.
    # The workers that died with it are zombies no one could reap (their
    # parent was killed): --tolerate unreaped.
    HINT="hint: a killed parent runs no clean-up: right after fork(), each worker asks
      the kernel to kill it when its parent dies (die_with_parent(),
      prctl(PR_SET_PDEATHSIG)), or it sleeps on through its task."
    run_prog --kill KILL@busy --linger 1 --tolerate unreaped --tolerate survivors -j 2 -d 5000 2
    assert_status 137
    assert_stderr_empty
    [ "$g_survivors" = 0 ] ||
        fail "$g_survivors worker(s) still ran a second after their parent was killed (pids $g_survivor_pids)." \
            "$(reproduce)"
}

@test "a worker killed from outside in the middle of a task is reported with its task" {
    HINT=$DEATH_HINT
    run_errors --kill w0/KILL@busy -j 2 -d 5000 2
    assert_one_error "^errors: task 0: worker [0-9]+ killed by signal 9 \(Killed\)$"
}

@test "a stopped worker does not hang the report of another worker's death" {
    # Worker 1 is stopped (SIGSTOP) in its task; a second later task 0
    # kills its own worker (-k 0). The map must stop worker 1 too: a stopped
    # process holds SIGTERM pending until SIGCONT.
    HANG_HINT="hint: pool_terminate() sends SIGTERM, then SIGCONT: a stopped worker acts
      on SIGTERM only once it is continued, and until then the waitpid()
      for it never returns."
    run_prog --deadline 5 --kill w1/STOP@busy -j 2 -d 1000 -k 0 2
    assert_one_error "^errors: task 0: worker [0-9]+ killed by signal 9 \(Killed\)$"
}

@test "a stopped worker's task runs past its deadline (-t) and is reported" {
    # Task 0 would take 1 s; its worker is stopped in it, so it times out
    # at 3 s and is killed: SIGKILL ends a stopped process too.
    run_prog --deadline 8 --kill w0/STOP@busy -j 1 -d 1000 -t 3000 3
    assert_one_error "^errors: task 0: worker [0-9]+ timed out after 3000 ms and was killed$"
}

@test "stdout to a full disk (/dev/full): status 1 and one line that names stdout" {
    local args
    for args in "-j 2 10" "-h"; do
        # shellcheck disable=SC2086 # split args on purpose
        run_errors --stdout /dev/full $args
        assert_one_error '^errors: stdout: No space left on device$'
    done
}

@test "stdin closed changes nothing" {
    run_errors --close 0 -j 2 10
    assert_status 0
    assert_stderr_empty
    assert_output "$(instances 10)"
}

@test "stdout closed is a write error: status 1 and one line" {
    [ "${FORKLINGS_VALGRIND:-}" != 1 ] || skip "valgrind opens its log on the lowest free descriptor, the closed stdout: the output would go into its log"
    run_errors --close 1 -j 2 10
    assert_one_error '^errors: stdout: Bad file descriptor$'
    run_errors --close 0 --close 1 -j 3 10
    assert_one_error '^errors: stdout: Bad file descriptor$'
}

@test "| head -1: the list, and nothing left" {
    run_errors --head 1 -j 2 10
    assert_status 0
    assert_stderr_empty
    assert_output "$(instances 10)"
}

@test "too few descriptors (ulimit -n): status 1, one line, the workers started are reaped" {
    [ "${FORKLINGS_VALGRIND:-}" != 1 ] || skip "valgrind needs descriptors of its own: ulimit -n 8 is too low for it"
    # 8 descriptors: 0 to 2, and room for the pipes of one worker only.
    run_errors --nofile 8 -j 4 10
    assert_one_error '^errors: pipe: Too many open files$'
    assert_forked_at_least 1
}

@test "fork() failing (ulimit -u): status 1, one line, the workers started are reaped" {
    run_errors --fork-fails-after 2 -j 4 10
    assert_one_error '^errors: fork: Resource temporarily unavailable$'
    assert_pool_of 2
}

@test "-h prints usage on stdout and exits 0" {
    run_errors -h
    assert_status 0
    assert_match '^usage: errors ' "$output" "stdout"
    assert_stderr_empty
}

@test "rejects bad arguments with one line on stderr and status 2" {
    local args
    for args in "-j 0 5" "-j abc 5" "-j -3 5" "-j 99999 5" "-x" "-q 5" "-d -1 5" \
        "-t 0 5" "-f 5 5" "-f x 5" "-s 3-1 5" "-f 1,,2 5" "-f 3 -k 3 5" \
        "" "5 6" "-- -1"; do
        # shellcheck disable=SC2086 # split args on purpose
        run_errors $args
        assert_usage_error
    done
}
