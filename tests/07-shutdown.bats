#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Lesson 07 shutdown: close, terminate and join; Ctrl-C, SIGTERM, a reader
# that leaves, a parent killed outright: no orphan, no zombie, ever.
# The starter fails: "Ctrl-C after three results stops every worker, reports the tasks done and exits 130"

# shellcheck disable=SC2154 # status, output, g_* are set by lib/harness
load lib/harness

# The report of an early end, the one line on stderr (report_end() in
# shutdown.c): why, what became of the pool, the tasks, the workers.
END_RE='^shutdown: (SIGINT|SIGTERM|-C [0-9]+|-T [0-9]+): (terminated|closed): ([0-9]+) of ([0-9]+) tasks done, ([0-9]+) discarded, ([0-9]+) never sent; ([0-9]+) workers (stopped, ([0-9]+) with SIGKILL|joined)$'

# Set by assert_report from the report line.
r_done="" r_total="" r_discarded="" r_unsent="" r_workers="" r_killed=""

# assert_results N: every line of stdout is a result `sqr(X) = X*X` of a
# task X from 0 to N-1, and no task's result is printed twice.
assert_results() {
    [ ${#lines[@]} -gt 0 ] || return 0
    local bad
    bad=$(printf '%s\n' "${lines[@]}" | awk -v n="$1" '
        !/^sqr\([0-9]+\) = [0-9]+$/ { print "  not a result: " $0; next }
        { split($0, f, /[()= ]+/)
          if (f[2] + 0 >= n || f[3] + 0 != f[2] * f[2]) print "  wrong: " $0
          if (seen[f[2]]++) print "  printed twice: " $0 }' | head -5)
    [ -z "$bad" ] && return 0
    fail "stdout should hold only result lines 'sqr(X) = X*X', each task once:" \
        "$bad" "$(reproduce)"
}

# assert_report WHY HOW: stderr is exactly one line, the report of an early
# end for WHY (SIGINT, SIGTERM, -C 3, -T 3) in which the pool was HOW
# (terminated or closed); the tasks it counts as done are the results on
# stdout. Sets r_done, r_total, r_discarded, r_unsent, r_workers, r_killed.
assert_report() {
    if [ ${#stderr_lines[@]} = 0 ]; then
        fail "expected one line on stderr that reports the tasks done, got none." \
            "hint: the program must notice the stop: is on_stop_signal() the handler" \
            "      (catch_signal()), does it write a byte to the self-pipe, and does" \
            "      collect_results() poll that pipe and return POOL_INTERRUPTED?" \
            "$(reproduce)"
        return 1
    fi
    if [ ${#stderr_lines[@]} != 1 ]; then
        local hint=()
        [[ $stderr == *"killed by signal 2"* ]] && hint=(
            "hint: a worker died of SIGINT. Ctrl-C reaches the whole process group;"
            "      worker_setup() must make the workers ignore SIGINT (SIG_IGN), so"
            "      that the parent alone decides, and stops them with SIGTERM.")
        fail "expected exactly one line on stderr, the report; got ${#stderr_lines[@]}:" \
            "$stderr" "${hint[@]}" "$(reproduce)"
        return 1
    fi
    [[ ${stderr_lines[0]} =~ $END_RE ]] ||
        fail "the report on stderr is not in the form the README gives:" \
            "${stderr_lines[0]}" "$(reproduce)" || return 1
    local why=${BASH_REMATCH[1]} how=${BASH_REMATCH[2]}
    r_done=${BASH_REMATCH[3]} r_total=${BASH_REMATCH[4]}
    r_discarded=${BASH_REMATCH[5]} r_unsent=${BASH_REMATCH[6]}
    r_workers=${BASH_REMATCH[7]} r_killed=${BASH_REMATCH[9]:-}
    local hint=()
    [ "$why $how" = "$1 closed" ] && [ "$2" = terminated ] && hint=(
        "hint: the map went on to its end after the signal, and the pool was joined:"
        "      the signal did not wake the map's poll(). collect_results() must put"
        "      the self-pipe (wake_pipe[0]) in its poll set.")
    [ "$why $how" = "$1 $2" ] ||
        fail "expected the report to say '$1: $2', it says:" "${stderr_lines[0]}" \
            "${hint[@]}" "$(reproduce)" || return 1
    [ "$r_done" = ${#lines[@]} ] ||
        fail "the report counts $r_done tasks done, but ${#lines[@]} results were printed:" \
            "${stderr_lines[0]}" "$(reproduce)" || return 1
    [ $((r_done + r_discarded + r_unsent)) = "$r_total" ] ||
        fail "tasks done, discarded and never sent should add up to all $r_total:" \
            "${stderr_lines[0]}" "$(reproduce)"
}

# assert_no_sigkill: the report says no worker needed SIGKILL.
assert_no_sigkill() {
    [ "$r_killed" = 0 ] && return 0
    fail "expected every worker to end by SIGTERM alone, but $r_killed needed SIGKILL." \
        "hint: a worker keeps the parent's signal actions and mask after fork():" \
        "      worker_setup() must put SIGTERM back to SIG_DFL, or the worker" \
        "      runs the parent's handler and carries on. And reap_until() must" \
        "      count only the workers still running: the rest get SIGKILL." \
        "$(reproduce)"
}

# assert_faster_than MS WHAT [HINT...]: the run took less than MS
# milliseconds, unless programs run slowed down (sanitizers, valgrind).
# Only for a run without a planned signal, whose right length is a small
# part of MS and whose wrong one many times MS.
assert_faster_than() {
    slow_mode && return 0
    [ "$g_elapsed_ms" -lt "$1" ] && return 0
    fail "expected $2 within ${1} ms, it took ${g_elapsed_ms} ms." "${@:3}" "$(reproduce)"
}

# assert_stopped_within MS WHAT [HINT...]: the program ended less than MS
# milliseconds after the guard sent its planned signal (g_kick_ms), unless
# programs run slowed down. Measured from the signal, not from the start,
# so that however long the program took to get there, only the stop counts.
assert_stopped_within() {
    slow_mode && return 0
    local took=$((g_elapsed_ms - g_kick_ms))
    [ "$took" -lt "$1" ] && return 0
    fail "expected $2 within $1 ms of the signal, it took $took ms" \
        "(signal sent ${g_kick_ms} ms after the start, end at ${g_elapsed_ms} ms)." \
        "${@:3}" "$(reproduce)"
}

# assert_stopped_by SIGNAME STATUS: after a signal at some moment of a run
# of 20 tasks: the results printed are right; the status is STATUS, or 0
# when the run was over before the signal came; and stderr is empty (the
# signal came before the pool started) or the report of that signal.
assert_stopped_by() {
    assert_results 20
    [ "$status" = 0 ] && [ ${#lines[@]} = 20 ] && return 0
    assert_status "$2" || return 1
    [ ${#stderr_lines[@]} = 0 ] && return 0
    case ${stderr_lines[0]} in
    *": closed: "*) assert_report "$1" closed ;;    # during the join
    *) assert_report "$1" terminated ;;
    esac
}

# assert_stopped SIGNUM: the program ended with status 128 + SIGNUM, as a
# stop signal asks; a plain 0 means the signal changed nothing.
assert_stopped() {
    [ "$status" = $((128 + $1)) ] && return 0
    local hint=()
    [ "$status" = 0 ] && hint=(
        "hint: the signal changed nothing: the run went on to its end. The"
        "      handler on_stop_signal() must set stop_signal and write a byte to"
        "      the self-pipe; collect_results() must poll the self-pipe and return"
        "      POOL_INTERRUPTED; main() (given) then ends by that signal.")
    fail "expected exit status $((128 + $1)) (128 + signal $1), got $status" \
        "stderr was: $(show_stderr)" "${hint[@]}" "$(reproduce)"
}

# What a test that stops the program with a signal sets, for teardown.
STOP_TEST=""

# After a failed test that sends a stop signal ($STOP_TEST; other tests
# give their own hint): a program that died of the signal with nothing on
# stderr never caught it; one that hit the deadline was waiting for
# something, which says which TODO is likely at fault.
lesson_teardown() {
    [ -z "${BATS_TEST_COMPLETED:-}" ] || return 0
    [ -n "$STOP_TEST" ] || return 0
    if [ "${g_timeout:-0}" != 1 ]; then
        case ${status:-}:${stderr:-} in
        130: | 143:)
            printf '%s\n' "hint: the program died of the signal at once, before any report: the" \
                "      signal's default action, so nothing caught it. catch_signal() must" \
                "      make on_stop_signal() its handler (and worker_setup() make the" \
                "      workers ignore SIGINT: else they die of Ctrl-C too, unreaped)." >&2 ;;
        130:* | 143:*)
            [ "${g_unreaped:-0}" -gt 0 ] 2>/dev/null || [ "${g_survivors:-0}" -gt 0 ] 2>/dev/null &&
                printf '%s\n' "hint: the stop was reported, but workers were left behind: after a" \
                    "      signal the program calls pool_terminate(), which must end every" \
                    "      worker (SIGTERM, the grace period with reap_until(), SIGKILL) and" \
                    "      reap each one before it returns." >&2 ;;
        esac
        return 0
    fi
    local parent=${g_stuck%% *}
    case $parent in
    *:poll* | *:*select*)
        printf '%s\n' "hint: the parent still waits in poll(): a signal must wake it. Is" \
            "      on_stop_signal() the handler (catch_signal()), does it write to" \
            "      wake_pipe[1], and does collect_results() watch wake_pipe[0]?" >&2 ;;
    *:do_wait* | *:*wait_consider*)
        printf '%s\n' "hint: the parent waits for a worker that does not end. pool_terminate()" \
            "      must give the workers p->grace_ms after SIGTERM (reap_until()), then" \
            "      SIGKILL the rest; and worker_setup() must set SIGTERM back to SIG_DFL." >&2 ;;
    esac
}

@test "runs every task when left alone: each result once, status 0, nothing on stderr" {
    run_prog -j 4 -n 40 -d 5
    assert_status 0
    assert_stderr_empty
    seq 0 39 | awk '{ printf "sqr(%d) = %d\n", $1, $1 * $1 }' >"$BATS_TEST_TMPDIR/all"
    assert_lines_any_order "$BATS_TEST_TMPDIR/all"
    assert_pool_of 4
}

@test "the signal handler only sets a flag and writes to the self-pipe: async-signal-safe calls" {
    # Read from the program's machine code: every call on_stop_signal()
    # makes, directly or through the program's own functions.
    assert_handler_is_safe on_stop_signal
}

@test "Ctrl-C after three results stops every worker, reports the tasks done and exits 130" {
    STOP_TEST=1
    # Ctrl-C: SIGINT to the whole process group, workers included.
    run_prog --kill INT@L3 --group -j 4 -n 200 -d 100
    assert_stopped 2
    assert_results 200
    assert_report SIGINT terminated
    [ "$r_done" -ge 3 ] && [ "$r_done" -lt 200 ] && [ "$r_workers" = 4 ] ||
        fail "expected 3 or more (not all) of 200 tasks done and 4 workers:" \
            "${stderr_lines[0]}" "$(reproduce)"
    assert_no_sigkill
    # From the signal: the right stop takes milliseconds (SIGTERM ends the
    # workers at once), a run that goes on to its end 4.8 s more.
    assert_stopped_within 2000 "a prompt stop (the whole run takes 5 s)"
}

@test "SIGTERM to the parent alone stops every worker and exits 143" {
    STOP_TEST=1
    run_prog --kill TERM@L3 -j 4 -n 200 -d 100
    assert_stopped 15
    assert_results 200
    assert_report SIGTERM terminated
    [ "$r_workers" = 4 ] || fail "expected 4 workers stopped:" "${stderr_lines[0]}" "$(reproduce)"
    assert_no_sigkill
    # From the signal, as above: milliseconds, or 4.8 s more.
    assert_stopped_within 2000 "a prompt stop (the whole run takes 5 s)"
}

@test "SIGTERM to the whole group, as a service manager sends it: workers it ends are no failure" {
    STOP_TEST=1
    # The workers die of it at once (their default action), maybe before the
    # parent has read their results: that is the stop, not a failed task.
    local _ rounds=(1 2 3)
    [ "${FORKLINGS_VALGRIND:-}" != 1 ] || rounds=(1)  # seconds a run there
    for _ in "${rounds[@]}"; do
        run_prog --kill TERM@L3 --group -j 4 -n 200 -d 20
        assert_stopped 15
        assert_results 200
        assert_report SIGTERM terminated
    done
}

@test "ends by the signal itself, so that a shell running it in a loop stops too" {
    STOP_TEST=1
    local sig num
    for sig in INT:2 TERM:15; do
        num=${sig#*:}
        run_prog --kill "${sig%:*}@L2" -j 2 -n 100 -d 50
        assert_stopped "$num"
        [ "$g_signal" = "$num" ] ||
            fail "expected the program to die of signal $num, it exited with status $status." \
                "hint: after cleaning up, exit_like_signal() (given) restores the default" \
                "      action (SIG_DFL), unblocks the signal and raise()s it: exit(128 + sig)" \
                "      gives the same number, but a shell sees an exit, not a signal." \
                "$(reproduce)"
    done
}

@test "a signal at any moment of a run leaves no worker and no zombie behind" {
    STOP_TEST=1
    # Early moments land while the program starts, before or while the
    # pool forks; L-moments after that many results. The guard fails the
    # test by itself on a process left running or a child left unreaped.
    # A late moment may find the run over (all 20 results, status 0): the
    # signal then had nothing to stop, which this test accepts (--tolerate
    # unsent); the other tests of this file make sure that it is sent.
    # A signal at 0 s may kill the guard's child before it creates the
    # stderr file, which would then still hold the previous run's: empty it.
    # Under valgrind each run takes seconds: one moment of each kind.
    # A signal that comes as the run ends may find the parent in exit(),
    # where a sanitizer build's leak check has a tracer process of its own.
    without_leak_tracer
    local kick ints=(INT@0 INT@0.02 INT@0.05 INT@L1 INT@L10 INT@L19)
    local terms=(TERM@0 TERM@0.03 TERM@0.1 TERM@L5 TERM@L18)
    if [ "${FORKLINGS_VALGRIND:-}" = 1 ]; then
        ints=(INT@0.05 INT@L10) terms=(TERM@0 TERM@L5)
    fi
    for kick in "${ints[@]}"; do
        : >"$BATS_TEST_TMPDIR/stderr"
        run_prog --kill "$kick" --group --tolerate unsent -j 4 -n 20 -d 50
        assert_stopped_by SIGINT 130
    done
    for kick in "${terms[@]}"; do
        : >"$BATS_TEST_TMPDIR/stderr"
        run_prog --kill "$kick" --tolerate unsent -j 4 -n 20 -d 50
        assert_stopped_by SIGTERM 143
    done
}

@test "escalates to SIGKILL after the grace period when workers ignore SIGTERM (-S)" {
    STOP_TEST=1
    # Each task ignores SIGTERM and would run 10 s; the grace period is 0.3 s.
    # No line is printed before a task ends, so the signal is planned for
    # the moment the guard sees the parent asleep in poll() and every worker
    # asleep in its task (their wchans): each has set SIGTERM aside (-S),
    # and no task ends before 10 s. The report's counts confirm the moment:
    # nothing done, 3 in flight.
    run_prog --deadline 5 --kill TERM@busy -S -j 3 -n 6 -d 10000 -g 300
    assert_stopped 15
    assert_report SIGTERM terminated
    [ "$r_done" = 0 ] && [ "$r_discarded" = 3 ] ||
        fail "expected the report to count 0 tasks done and the 3 in flight discarded" \
            "(the signal came while the parent waited in poll() for tasks of 10 s):" \
            "${stderr_lines[0]}" "$(reproduce)" ||
        return 1
    [ "$r_killed" = 3 ] ||
        fail "expected the 3 stubborn workers to need SIGKILL:" "${stderr_lines[0]}" \
            "$(reproduce)" || return 1
    # From the signal: right, the grace period and a few ms (0.3 s); wrong,
    # without SIGKILL, the rest of the tasks (9.5 s; the deadline ends it).
    assert_stopped_within 2000 "SIGKILL soon after the 0.3 s grace period"
}

@test "SIGTERM ends a worker in the middle of its task: no SIGKILL, no grace period waited out" {
    STOP_TEST=1
    # Tasks of 3 s, a grace period of 2 s: a worker that SIGTERM does not
    # end at once gets SIGKILL, and the stop takes seconds. The signal comes
    # when the guard sees the parent asleep in poll() and every worker asleep
    # in its task (their wchans), and no task ends before 3 s (the report
    # must say so: nothing done, 4 in flight).
    run_prog --deadline 6 --kill TERM@busy -j 4 -n 100 -d 3000 -g 2000
    assert_stopped 15
    assert_report SIGTERM terminated
    [ "$r_done" = 0 ] && [ "$r_discarded" = 4 ] ||
        fail "expected the report to count 0 tasks done and the 4 in flight discarded" \
            "(the signal came while the parent waited in poll() for tasks of 3 s):" \
            "${stderr_lines[0]}" "$(reproduce)" ||
        return 1
    assert_no_sigkill
    # From the signal: right, a few ms (SIGTERM ends each worker at once);
    # wrong, 2 s (the grace period waited out) or 2.5 s (the parent's
    # poll() not woken: it waits for the first task to end).
    assert_stopped_within 1000 "the stop: SIGTERM ends the workers at once" \
        "hint: the parent went on until a task ended (3 s): the signal did not" \
        "      wake its poll(). A flag alone is not enough: on_stop_signal() must" \
        "      also write a byte to the self-pipe that collect_results() polls." \
        "      Or pool_terminate() waited out the grace period: reap_until() returns" \
        "      as soon as every worker has ended."
}

@test "when the parent is killed outright (SIGKILL), every worker leaves by itself within a second" {
    # Nobody can clean up after SIGKILL: the workers must notice by
    # themselves (end-of-file on the task pipe, EPIPE on the result pipe).
    # The guard gives them 1.5 s, then counts survivors: ten times the
    # longest a busy worker needs (its task, 0.1 or 0.15 s, then EPIPE); a
    # worker that cannot see its parent's death never leaves. Workers that
    # ended at once are zombies of the dead parent: tolerated, the guard
    # reaps them.
    run_prog --kill KILL@L2 --linger 1.5 --tolerate unreaped -j 4 -n 200 -d 100
    assert_status 137
    # Workers in the middle of a task (the ones just handed the next),
    # idle ones beside them.
    run_prog --kill KILL@L1 --linger 1.5 --tolerate unreaped -j 6 -n 8 -d 150
    assert_status 137
}

@test "| head -1: stops at once and quietly, status 141 as SIGPIPE gives" {
    run_prog --head 1 --deadline 5 -j 4 -n 1000 -d 50
    assert_line_count 1
    assert_stderr_empty
    assert_status 141
    # No signal to measure from: the right run is the first task and the
    # next result's failed print, about 0.1 s, a twentieth of the limit;
    # one that does not notice the reader has gone runs 12 s.
    assert_faster_than 2000 "the stop (the whole run takes 12 s)"
    run_prog --head 1 --deadline 5 -j 2 -n 1000000 -d 0
    assert_line_count 1
    assert_stderr_empty
    assert_status 141
}

@test "close (-C 3): the tasks handed out still finish, none is discarded, the workers leave" {
    if ! run_prog -j 4 -n 40 -d 100 -C 3; then
        [ "$g_timeout" = 1 ] && fail "hint: pool_close() must close only the task pipes: the map still" \
            "      reads the results of the tasks the workers hold, from their" \
            "      result pipes."
        return 1
    fi
    assert_status 0
    assert_results 40
    assert_report "-C 3" closed
    [ "$r_discarded" = 0 ] && [ "$r_done" -ge 3 ] && [ "$r_done" -lt 40 ] &&
        [ $((r_done + r_unsent)) = 40 ] && [ "$r_workers" = 4 ] ||
        fail "expected 3 or more tasks done, 0 discarded, the rest never sent:" \
            "${stderr_lines[0]}" \
            "hint: pool_close() closes only the task pipes; pool_map() still reads" \
            "      the results of the chunks the workers hold." "$(reproduce)"
}

@test "terminate (-T 3): stops at once, the tasks in flight are discarded" {
    run_prog -j 4 -n 40 -d 100 -T 3
    assert_status 0
    assert_results 40
    assert_report "-T 3" terminated
    [ "$r_done" = 3 ] && [ "$r_discarded" -ge 1 ] && [ "$r_workers" = 4 ] ||
        fail "expected 3 tasks done and the ones in flight discarded:" \
            "${stderr_lines[0]}" "$(reproduce)"
    assert_no_sigkill
}

@test "workers read /dev/null, not the program's stdin (-r)" {
    # stdin is a FIFO that nobody ever writes to (this shell holds it open
    # for writing): a worker that read it would wait for ever.
    local fifo=$BATS_TEST_TMPDIR/fifo fd
    mkfifo "$fifo"
    exec {fd}<>"$fifo"
    if ! run_prog --deadline 5 --stdin "$fifo" -r -j 2 -n 4 -d 0; then
        exec {fd}>&-
        [ "$g_timeout" = 1 ] && fail "a task that reads stdin waited for ever on the program's stdin." \
            "hint: worker_setup() must open /dev/null and dup2() it onto" \
            "      STDIN_FILENO: a worker must never read the terminal."
        return 1
    fi
    exec {fd}>&-
    assert_status 0
    assert_line_count 4
}

@test "-h prints usage on stdout and exits 0" {
    run_prog -h
    assert_status 0
    assert_match '^usage: shutdown ' "$output" "stdout"
    assert_stderr_empty
}

@test "rejects bad arguments with one line on stderr and status 2" {
    local args all=("-j 0" "-j abc" "-j -3" "-j 99999" "-j" "-n -1" "-n 1x"
        "-d 99999" "-d -1" "-g -5" "-C 0" "-T x" "-C 3 -T 3" "-x" "extra")
    # Under valgrind (seconds a run, and no fork before the check): a few.
    [ "${FORKLINGS_VALGRIND:-}" != 1 ] || all=("-j 0" "-C 3 -T 3" "-x")
    for args in "${all[@]}"; do
        # shellcheck disable=SC2086 # split args on purpose
        run_prog $args
        assert_usage_error
    done
}

# ---- the fault matrix: an adversarial user ------------------------------

@test "when the parent is killed mid-task (SIGKILL), every worker dies within a second" {
    # Tasks of 5 s (10 s when the programs run slowed down, so that a task
    # always outlasts the guard's second, scaled): only the parent's death
    # can end them in time. The workers it ends are zombies of the dead
    # parent: tolerated, the guard reaps them.
    local ms=5000
    slow_mode && ms=10000
    if ! run_prog --deadline 20 --kill KILL@busy --linger 1 --tolerate unreaped \
        -j 3 -n 6 -d "$ms"; then
        [ "$g_survivors" -gt 0 ] 2>/dev/null &&
            fail "hint: a busy worker sees its parent's death only when its task ends" \
                "      (EPIPE): die_with_parent() (given), right after fork(), asks the" \
                "      kernel to send it SIGKILL when the parent dies (PR_SET_PDEATHSIG)."
        return 1
    fi
    assert_status 137
}

@test "a worker killed from outside mid-task fails the map, naming its task: one line, status 1" {
    # Worker 0 holds task 0 (slot 0 is fed first); SIGKILL when every
    # worker sleeps in its task.
    run_prog --deadline 8 --kill w0/KILL@busy -j 2 -n 4 -d 1000
    assert_status 1
    assert_output ""
    [ "$stderr" = "${stderr#*$'\n'}" ] &&
        [[ $stderr =~ ^shutdown:\ task\ 0:\ worker\ [0-9]+\ killed\ by\ signal\ 9\  ]] &&
        return 0
    fail "expected one line 'shutdown: task 0: worker N killed by signal 9 (...)', got:" \
        "$(show_stderr)" "$(reproduce)"
}

@test "SIGTERM with a stopped worker (SIGSTOP): terminate continues it, no SIGKILL needed" {
    STOP_TEST=1
    # A SIGTERM to a stopped process waits until it is continued: without a
    # SIGCONT the grace period (2 s) runs out and the worker needs SIGKILL.
    # Worker 0 is stopped once every worker sleeps in its task; SIGTERM
    # comes once it is stopped (state T). (A SIGTERM to a worker that has
    # not yet acted on its SIGSTOP would kill it first, lower signal
    # numbers being taken first, and prove nothing.)
    run_prog --deadline 8 --kill w0/STOP@busy --kill TERM@stopped -j 3 -n 6 -d 1000 -g 2000
    assert_stopped 15
    assert_report SIGTERM terminated
    [ "$r_killed" = 0 ] && return 0
    fail "expected every worker to end by SIGTERM, but $r_killed needed SIGKILL:" \
        "${stderr_lines[0]}" \
        "hint: a stopped worker keeps SIGTERM pending until SIGCONT: pool_terminate()" \
        "      sends SIGCONT right after SIGTERM." "$(reproduce)"
}

@test "a full disk (/dev/full): one line 'shutdown: stdout: ...', status 1, no worker left" {
    run_prog --stdout /dev/full -j 2 -n 10 -d 1
    assert_status 1
    [ "$stderr" = "shutdown: stdout: No space left on device" ] ||
        fail "expected the one line 'shutdown: stdout: No space left on device', got:" \
            "$(show_stderr)" "$(reproduce)" || return 1
    run_prog --stdout /dev/full -h
    assert_status 1
    [ "$stderr" = "shutdown: stdout: No space left on device" ] ||
        fail "expected -h to a full disk to fail with one line naming stdout, got:" \
            "$(show_stderr)" "$(reproduce)"
}

@test "stdin closed (<&-): every task runs, status 0" {
    run_prog --close 0 -j 2 -n 6 -d 1
    assert_status 0
    assert_stderr_empty
    assert_line_count 6
    assert_results 6
}

@test "stdout closed (>&-): one line 'shutdown: stdout: Bad file descriptor', status 1" {
    [ "${FORKLINGS_VALGRIND:-}" != 1 ] ||
        skip "valgrind opens its log file on the closed descriptor 1: stdout is not closed there"
    run_prog --close 1 -j 2 -n 6 -d 1
    assert_status 1
    [ "$stderr" = "shutdown: stdout: Bad file descriptor" ] && return 0
    fail "expected the one line 'shutdown: stdout: Bad file descriptor', got:" \
        "$(show_stderr)" \
        "hint: with stdout closed, the first pipe() takes descriptor 1, and results go" \
        "      into a worker's pipe. open_standard_fds() opens /dev/null onto each" \
        "      closed standard descriptor first." "$(reproduce)"
}

@test "stderr closed (2>&-): every task runs, status 0" {
    run_prog --close 2 -j 2 -n 6 -d 1
    assert_status 0
    assert_line_count 6
    assert_results 6
}

@test "too few descriptors (ulimit -n): one line, status 1, no worker left" {
    [ "${FORKLINGS_VALGRIND:-}" != 1 ] ||
        skip "valgrind needs descriptors of its own: a low ulimit -n fails valgrind, not the pool"
    run_prog --nofile 12 -j 8 -n 20 -d 1
    assert_status 1
    assert_output ""
    [ "$stderr" = "shutdown: pipe: Too many open files" ] && return 0
    fail "expected the one line 'shutdown: pipe: Too many open files', got:" \
        "$(show_stderr)" "$(reproduce)"
}

@test "fork fails after two workers (ulimit -u): one line, status 1, those two stopped" {
    run_prog --fork-fails-after 2 -j 8 -n 20 -d 1
    assert_status 1
    assert_output ""
    [ "$stderr" = "shutdown: fork: Resource temporarily unavailable" ] ||
        fail "expected the one line 'shutdown: fork: Resource temporarily unavailable', got:" \
            "$(show_stderr)" "$(reproduce)" || return 1
    assert_forked_at_least 2
}
