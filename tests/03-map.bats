#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Lesson 03 map: Pool.map in C; the list comes back in input order.
# The starter fails: "prints the squares of 0..9 in input order, as Python prints the list"

# shellcheck disable=SC2154,SC2030,SC2031 # status, output, g_* are set by lib/harness
load lib/harness

# What assert_list (lib/harness) says when an item is out of place.
# shellcheck disable=SC2034 # read by lib/harness
LIST_HINT=("hint: each result record names the index of its first item; store the"
    "      values at out[first], out[first + 1], ... whatever order records"
    "      arrive in.")

# v_field NAME: the number after NAME in the -v line on stderr.
v_field() {
    sed -nE "s/.*[ :]$1 ([0-9]+).*/\\1/p" <<<"$stderr" | head -1
}

# After a failed test: a hint that names the function of this lesson most
# likely at fault, from what the program said or where it hung.
lesson_teardown() {
    stop_background             # a test that failed while its run went on
    [ -z "${BATS_TEST_COMPLETED:-}" ] || return 0
    local hint=()
    case ${stderr:-} in
    *"Function not implemented"*)
        hint=("a stub still runs: the whole-read and whole-write helpers (readn()"
            "and writen(), the first two TODOs) fail with ENOSYS until you write them.") ;;
    *"cut short"*)
        hint=("read() on a pipe may return fewer bytes than you asked for, long"
            "before end-of-file: readn() must loop until it has all n bytes.") ;;
    *"exited with status 0 before sending the results"*)
        hint=("the worker left without answering. Does worker_main() loop while"
            "read_task() returns 1, and writen() each record back? Does readn()"
            "return the number of bytes it read?") ;;
    *"no worker holds a chunk"*)
        hint=("send_chunk() must write the record and note the chunk the worker"
            "now holds (w->first, w->count): pool_map() waits only for busy workers.") ;;
    *"no result read from worker"*)
        hint=("receive_result() must read the values and return how many it stored"
            "(head.count), or poll() reports the same record for ever.") ;;
    esac
    if [ -z "${stderr:-}" ] && [[ ${output:-} =~ ^\[0(,\ 0)+\]$ ]]; then
        hint=("no result was stored (every item is 0): pool_map() is still the"
            "starter's stub, or its loop ends before any result has been received"
            "into out. Write the TODOs in the order of the README's Your task.")
    fi
    local p main=""
    for p in ${g_stuck:-}; do
        [[ $p == "${g_pid:-x}":* ]] && main=$p
    done
    if [ "${g_timeout:-0}" = 1 ] && [[ $main =~ ^[0-9]+:[^:]*:(R:|[^:]*:0(:|$)) ]]; then
        hint=("the parent was running, waiting for nothing, at the deadline: a loop"
            "that makes no progress. Does send_chunk() return the items it sent,"
            "collect_results() the items it received, and does pool_map() send"
            "only to idle workers and stop once every result is in?")
    fi
    if [ "${g_timeout:-0}" = 1 ] && [[ ${g_stuck:-} == *poll* ]]; then
        hint=("the parent waits in poll() for a result that never comes. Does the"
            "worker send every result back, and does receive_result() mark the"
            "worker idle again (w->count = 0)?")
    fi
    [ ${#hint[@]} -gt 0 ] || return 0
    printf 'hint: %s\n' "${hint[0]}" >&2
    [ ${#hint[@]} -lt 2 ] || printf '      %s\n' "${hint[@]:1}" >&2
}

@test "prints the squares of 0..9 in input order, as Python prints the list" {
    run_prog -j 3 10
    assert_status 0
    assert_stderr_empty
    assert_output "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]"
}

@test "maps an empty input to [] and sends no task record" {
    run_prog -v -j 2 0
    assert_status 0
    assert_output "[]"
    [ "$(v_field chunksize)" = 0 ] && [ "$(v_field records)" = 0 ] ||
        fail "expected chunksize 0 and 0 task records for N = 0 (as Python), -v said:" \
            "$(show_stderr)" "$(reproduce)"
}

@test "maps a single item to [0]" {
    run_prog -j 4 1
    assert_status 0
    assert_output "[0]"
}

@test "gives the same list for every worker count and chunksize" {
    local j c want
    want=$(squares 37)
    for j in $(sweep 1 2 3 8); do
        for c in $(sweep 1 4 37 default); do
            if [ "$c" = default ]; then run_prog -j "$j" 37; else run_prog -j "$j" -c "$c" 37; fi
            assert_status 0
            assert_list "$want"
        done
    done
}

@test "keeps input order when each item sleeps a random while (-d)" {
    local seed want
    want=$(squares 40)
    for seed in $(sweep 1 2 3); do
        run_prog -j 4 -c 1 -d 10 -s "$seed" 40
        assert_status 0
        assert_list "$want"
        run_prog -j 3 -c 3 -d 10 -s "$seed" 40
        assert_status 0
        assert_list "$want"
    done
}

@test "stores each result at the index it names: the first item, finished last, still comes first" {
    # With -d 1000 and seed 96638, item 0 sleeps 999 ms and items 1, 2 and
    # 3 sleep 5, 6 and 16 ms. Worker 0 takes item 0 and worker 1 item 1;
    # worker 1 then gets item 2, then item 3, and all three of its results
    # are back some 30 ms in, about 970 ms before item 0's. So the records
    # arrive in the order 1, 2, 3, 0 on any machine: only a pool that stores
    # each record at its own index prints [0, 1, 4, 9].
    run_prog -j 2 -c 1 -d 1000 -s 96638 4
    assert_status 0
    assert_list "$(squares 4)"
}

@test "maps 200,000 items with 2 workers: records bigger than a pipe, no deadlock" {
    run_prog -v -j 2 200000
    assert_status 0
    assert_list "$(squares 200000)"
    [ "$(v_field records)" = 8 ] ||
        fail "expected 8 task records (chunksize 25000), -v said:" "$(show_stderr)" "$(reproduce)"
}

@test "maps 200,000 items in 20,000 small records with 3 workers" {
    run_prog -j 3 -c 10 200000
    assert_status 0
    assert_list "$(squares 200000)"
}

@test "maps 40,000 items in records bigger than a pipe, and in 2,000 small ones" {
    # Records of 80 KB: a second task reaches each worker while its first
    # result is bigger than the pipe it must go through.
    run_prog -j 2 -c 10000 40000
    assert_status 0
    assert_list "$(squares 40000)"
    # 1,000 records each way per worker, far more than a pipe holds.
    run_prog -j 2 -c 20 40000
    assert_status 0
    assert_list "$(squares 40000)"
}

@test "uses Python's default chunksize, ceil(N / (4 * WORKERS))" {
    local case j n want cases
    mapfile -t cases <<<"$(sweep "4 10 1" "4 100 7" "4 1000 63" "2 200000 25000" "3 1 1" "1 8 2" "8 33 2")"
    for case in "${cases[@]}"; do
        read -r j n want <<<"$case"
        run_prog -v -j "$j" "$n"
        assert_status 0
        [ "$(v_field chunksize)" = "$want" ] ||
            fail "for N = $n and $j workers expected chunksize $want, -v said:" \
                "$(show_stderr)" "$(reproduce)"
    done
}

@test "sends ceil(N / CHUNKSIZE) task records (-c)" {
    local case c n want cases
    mapfile -t cases <<<"$(sweep "7 100 15" "1 10 10" "1000 10 1" "5 5 1" "2 5 3")"
    for case in "${cases[@]}"; do
        read -r c n want <<<"$case"
        run_prog -v -j 2 -c "$c" "$n"
        assert_status 0
        assert_list "$(squares "$n")"
        [ "$(v_field records)" = "$want" ] ||
            fail "for N = $n and chunksize $c expected $want task records, -v said:" \
                "$(show_stderr)" "$(reproduce)"
    done
}

@test "holds at most WORKERS + 1 processes and reaps every worker" {
    run_prog -j 3 -c 1 -d 5 30
    assert_status 0
    assert_list "$(squares 30)"
    assert_pool_of 3
}

# not_there WHO PID: why WHO (PID) cannot be looked into, for a failure.
not_there() {
    local err w
    err=$(head -5 "$BATS_TEST_TMPDIR/err" 2>/dev/null)
    w=$(wchan_of "${2:-0}")
    if [ -z "$2" ] || [ ! -d "/proc/$2" ]; then
        # The run is over: the guard's report says how it ended.
        local gs=0
        wait "${bg_guard:-0}" 2>/dev/null || gs=$?
        echo "$1 ended while the test expected it to be busy for about 50 s;" \
            "stderr was: ${err:-(empty)}; the guard ended with status $gs; its report:" \
            "$(tr '\n' ' ' <"$BATS_TEST_TMPDIR/report" 2>/dev/null || echo none)" \
            "$(cat "$BATS_TEST_TMPDIR/guard.err" 2>/dev/null)"
    else
        echo "$1 ($2) never got there: it is ${w:+$(explain_wchan "$w")}${w:-running}"
    fi
}

# look_into_pool: run map -j 4 -c 1 -d 1000 -s 3 400 in the background,
# under the guard (which leaves it only 0, 1 and 2 open), and count the
# descriptors of the parent and of each worker. 400 items of up to a second
# make some 50 s of work: the workers are there for as long as the test
# looks, and then it stops the run. A process is counted only once it
# sleeps where it can be only after its set-up is over, the parent in
# poll() (pool_start() has forked every worker), a worker in nanosleep()
# (a task) or in read() (waiting for one): from then on, the descriptors it
# holds do not change, so the count is the same whenever it is taken.
# Sets prog and pfds (the parent's pid and count), kids and fds (the
# workers' pids and a count for each); fails when a process never gets
# there.
look_into_pool() {
    local i
    pfds="" kids=() fds=()
    start_background -- -j 4 -c 1 -d 1000 -s 3 400
    prog=$bg_prog
    [ -n "$prog" ] && await_wchan "$prog" 'poll' ||
        fail "expected the parent to wait in poll() for the results of its workers." \
            "$(not_there "the parent" "$prog")" \
            "to reproduce:  $PROG_REL -j 4 -c 1 -d 1000 -s 3 400" || return 1
    pfds=$(fd_count "$prog")
    mapfile -t kids < <(children "$prog")
    for i in "${!kids[@]}"; do
        await_wchan "${kids[i]}" 'nanosleep|pipe_read|pipe_wait' ||
            fail "expected each worker to sleep in a task or wait for one in read()." \
                "$(not_there "worker" "${kids[i]}")" \
                "to reproduce:  $PROG_REL -j 4 -c 1 -d 1000 -s 3 400" || return 1
        fds[i]=$(fd_count "${kids[i]}")
    done
    stop_background
}

@test "the parent and each worker hold only their own pipe ends, besides stdin, stdout and stderr" {
    [ -d /proc/self/fd ] || skip "needs /proc (Linux) to count a process's descriptors"
    have_wchan || skip "needs /proc/PID/wchan to see where a process waits"
    [ "${FORKLINGS_VALGRIND:-}" = 1 ] && skip "valgrind holds descriptors of its own"
    local prog pfds kids fds i shown=()
    look_into_pool
    [ ${#kids[@]} = 4 ] ||
        fail "expected the parent to have 4 workers while they sleep in their tasks, it had ${#kids[@]}" \
            "to reproduce:  $PROG_REL -j 4 -c 1 -d 1000 -s 3 400" || return 1
    [ "$pfds" = 11 ] ||
        fail "the parent should hold 11 descriptors while it maps: 0, 1, 2 and, for each" \
            "of its 4 workers, the write end of its task pipe and the read end of its" \
            "result pipe. It holds $pfds." \
            "hint: after each fork(), the parent closes the worker's ends of the two pipes" \
            "      (the task pipe's read end, the result pipe's write end): else a worker" \
            "      that dies never shows up as end-of-file, and each later worker inherits" \
            "      them." \
            "to reproduce:  $PROG_REL -j 4 -c 1 -d 1000 -s 3 400, and ls -l /proc/PID/fd of the parent" ||
        return 1
    printf '%s\n' "${fds[@]}" | grep -qvx 5 || return 0
    for i in "${!kids[@]}"; do
        shown+=("  worker ${kids[i]}: ${fds[i]} descriptors")
    done
    fail "each worker should hold 5 descriptors: 0, 1, 2, its task pipe's read end" \
        "and its result pipe's write end. Found:" "${shown[@]}" \
        "hint: a worker inherits the parent's ends of every pipe made before it;" \
        "      it must close them, or its siblings never see end-of-file." \
        "to reproduce:  $PROG_REL -j 4 -c 1 -d 1000 -s 3 400, and ls -l /proc/PID/fd of a worker"
}

# --- make trace: with POOL_TRACE=FILE the pool records its run (trace.h) ----

# trace_problems FILE N: what is wrong with FILE as the trace of a map over
# 0..N-1, one problem a line, nothing when all is well: a line that is
# neither "task INDEX COUNT PID START END" nor "wait PID START END"; an end
# before its start; items not covered exactly once by the chunks; a worker
# in two chunks at once; waits of the parent that overlap.
trace_problems() {
    awk -v n="$2" '
        function bad(msg) { if (shown++ < 8) print "  " msg }
        function overlap(s1, e1, s2, e2) { return s1 < e2 && s2 < e1 }
        /^task [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+$/ {
            if ($6 < $5) bad("line " NR ": ends before it starts: " $0)
            for (i = $2; i < $2 + $3; i++) covered[i]++
            for (k = 1; k <= nt; k++)
                if (tpid[k] == $4 && overlap(ts[k], te[k], $5, $6))
                    bad("worker " $4 " ran two chunks at once: items " tfirst[k] " and " $2)
            nt++; tpid[nt] = $4; ts[nt] = $5; te[nt] = $6; tfirst[nt] = $2
            next
        }
        /^wait [0-9]+ [0-9]+ [0-9]+$/ {
            if ($4 < $3) bad("line " NR ": ends before it starts: " $0)
            for (k = 1; k <= nw; k++)
                if (overlap(ws[k], we[k], $3, $4)) bad("two waits overlap: " $0)
            nw++; ws[nw] = $3; we[nw] = $4
            next
        }
        { bad("line " NR " is neither a task nor a wait line: " $0) }
        END {
            for (i = 0; i < n; i++)
                if (covered[i] != 1) bad("item " i " is in " covered[i] + 0 " chunks, not 1")
            for (i in covered)
                if (i + 0 >= n) bad("item " i " is in a chunk, but N is " n)
        }' "$1"
}

# trace_fail MESSAGE...: fail, showing the trace and how to make it again.
trace_fail() {
    fail "$@" "the trace ($trace):" "$(head -20 "$trace" 2>/dev/null)" \
        "to reproduce:  POOL_TRACE=/tmp/t $PROG_REL $trace_args; cat /tmp/t" \
        "hint: read_task() and trace.c (given) write the task lines; the wait lines" \
        "      come from collect_results(): trace_now() before its poll(), then" \
        "      trace_wait(start, trace_now()) once poll() has returned."
}

@test "with POOL_TRACE, records one task line per chunk, the chunks covering 0..N-1 once" {
    local case j c n want problems trace trace_args cases
    export POOL_TRACE=$BATS_TEST_TMPDIR/run.trace
    trace=$POOL_TRACE
    mapfile -t cases <<<"$(sweep "3 4 30 8" "2 1 9 9" "4 5 5 1" "2 default 50 8")"
    for case in "${cases[@]}"; do
        read -r j c n want <<<"$case"
        trace_args="-v -j $j$([ "$c" = default ] || echo " -c $c") -d 3 $n"
        rm -f "$trace"
        # shellcheck disable=SC2086 # split args on purpose
        run_prog $trace_args
        assert_status 0
        assert_list "$(squares "$n")"
        [ -f "$trace" ] || trace_fail "no trace file: POOL_TRACE names one, the pool must write it" || return 1
        [ "$(grep -c '^task ' "$trace")" = "$want" ] && [ "$(v_field records)" = "$want" ] ||
            trace_fail "expected $want task lines, one per task record sent (-v said:" \
                "$stderr), found $(grep -c '^task ' "$trace")" || return 1
        problems=$(trace_problems "$trace" "$n")
        [ -z "$problems" ] || trace_fail "the trace is wrong:" "$problems" || return 1
    done
}

# trace_pids ARGS...: run the program with ARGS and POOL_TRACE set, through
# a shell that writes down its own pid and then becomes the program (exec
# keeps the pid), so that the parent's pid is known. Sets trace, trace_args
# and parent. Not under valgrind: the shell is not the program.
trace_pids() {
    local pidfile=$BATS_TEST_TMPDIR/pid
    trace=$BATS_TEST_TMPDIR/run.trace
    trace_args=$*
    rm -f "$trace" "$pidfile"
    # shellcheck disable=SC2016,SC2153 # $0 and $@ are the inner shell's; PROG is lib/harness's
    run_guarded -- env POOL_TRACE="$trace" bash -c 'echo $$ >"$0" && exec "$@"' \
        "$pidfile" "$PROG" "$@"
    assert_status 0
    parent=$(cat "$pidfile")
}

@test "the trace's tasks come from the workers, each in turn, its waits from the parent" {
    local trace trace_args parent problems workers waits
    trace_pids -j 3 -c 2 -d 5 24
    assert_list "$(squares 24)"
    problems=$(trace_problems "$trace" 24)
    [ -z "$problems" ] || trace_fail "the trace is wrong:" "$problems" || return 1
    [ "$(grep -c '^task ' "$trace")" = 12 ] ||
        trace_fail "expected 12 task lines (24 items, chunksize 2)" || return 1
    ! awk -v p="$parent" '$1 == "task" && $4 == p { found = 1 } END { exit !found }' "$trace" ||
        trace_fail "a task line carries the parent's pid ($parent): a task line is" \
            "written by the worker that ran the chunk" || return 1
    workers=$(awk '$1 == "task" { print $4 }' "$trace" | sort -u | wc -l)
    [ "$workers" = 3 ] ||
        trace_fail "expected the tasks of 3 workers (each gets a chunk at the start), found $workers" || return 1
    waits=$(grep -c '^wait ' "$trace")
    [ "$waits" -ge 1 ] && [ "$waits" -le 12 ] ||
        trace_fail "expected 1 to 12 wait lines (at most one per chunk), found $waits" || return 1
    awk -v p="$parent" '$1 == "wait" && $2 != p { exit 1 }' "$trace" ||
        trace_fail "a wait line does not carry the parent's pid ($parent)"
}

@test "writes no trace without POOL_TRACE, or with it empty" {
    local dir=$BATS_TEST_TMPDIR/cwd
    mkdir -p "$dir"
    cd "$dir" || return 1
    unset POOL_TRACE
    run_prog -j 2 -c 1 -d 2 6
    assert_status 0
    assert_output "[0, 1, 4, 9, 16, 25]"
    POOL_TRACE="" run_prog -j 2 -c 1 -d 2 6
    assert_status 0
    assert_output "[0, 1, 4, 9, 16, 25]"
    [ -z "$(ls -A "$dir")" ] || fail "expected no file, found:" "$(ls -A "$dir")" "$(reproduce)"
}

@test "a POOL_TRACE file that cannot be made ends the program with status 1 and one line" {
    local bad=$BATS_TEST_TMPDIR/no/such/folder/run.trace
    POOL_TRACE=$bad run_prog -j 2 5
    assert_status 1
    [ ${#stderr_lines[@]} = 1 ] && [[ ${stderr_lines[0]} == "map: POOL_TRACE=$bad: "* ]] ||
        fail "expected one line on stderr, 'map: POOL_TRACE=$bad: ...', got:" "$(show_stderr)" "$(reproduce)"
    [ -z "$output" ] || fail "expected nothing on stdout, got:" "$output" "$(reproduce)"
}

# --- the fault matrix: killed, stopped, closed, full, short of resources ---

# expect_failure REGEX HINT...: status 1, nothing on stdout, and exactly one
# line on stderr, which matches the extended REGEX.
expect_failure() {
    local re=$1
    shift
    [ "$status" = 1 ] && [ ${#stderr_lines[@]} = 1 ] && [[ ${stderr_lines[0]} =~ $re ]] &&
        [ -z "$output" ] && return 0
    fail "expected status 1, nothing on stdout and one line on stderr that matches" \
        "  /$re/" "got status $status, stdout: ${output:-(empty)}" "stderr:" "$(show_stderr)" \
        "$@" "$(reproduce)"
}

@test "a worker killed mid-map: status 1 and one line naming it, the signal and its items" {
    # Seed 2 makes items 0 and 1 sleep 565 and 825 ms: worker 0 (the first
    # forked) still holds them, the first chunk, when the guard kills it at
    # the moment both workers sleep in their tasks.
    run_prog --kill w0/KILL@busy -j 2 -c 2 -d 1000 -s 2 8
    expect_failure '^map: worker [0-9]+ killed by signal 9 before sending the results for items 0 to 1$' \
        "hint: end-of-file on a busy worker's result pipe means it is gone: pool.c's" \
        "      fail_lost_chunk() (given) reaps it and says so in one line, and leave()" \
        "      ends and reaps the others without a word."
}

@test "a worker stopped, another killed: ends at once with one line, the stopped one ended too" {
    # Worker 1 is stopped (SIGSTOP), then, once it is (state T), worker 0
    # is killed, both in their first chunk. A stopped process sees no
    # end-of-file and no SIGTERM until it is continued: only SIGKILL ends
    # it, and the map must not wait for ever.
    run_prog --kill w1/STOP@busy --kill w0/KILL@stopped -j 2 -c 2 -d 1000 -s 2 8
    expect_failure '^map: worker [0-9]+ killed by signal 9 before sending the results for items 0 to 1$' \
        "hint: leave() (given) sends SIGKILL to every worker not yet reaped, then reaps it."
}

@test "no worker outlives its killed parent by more than about a second" {
    # Two chunks of 20 items, each item up to a second: some 10 s of work
    # per worker when the parent is killed. die_with_parent() (given) has
    # the kernel kill each worker with its parent; without it each runs its
    # chunk to the end. The parent cannot reap once dead: the zombies are
    # the guard's.
    run_prog --kill KILL@busy --linger 1 --tolerate unreaped --tolerate survivors \
        -j 2 -c 20 -d 1000 40
    [ "$g_survivors" = 0 ] ||
        fail "$g_survivors worker(s) still ran a second after their parent was killed" \
            "(SIGKILL to the parent while its workers sleep in their tasks)." \
            "hint: pool.c's die_with_parent() (given) must run in each new worker, first" \
            "      thing after fork(): prctl(PR_SET_PDEATHSIG, SIGKILL), then getppid()." \
            "$(reproduce)" || return 1
    [ "$status" = 137 ] ||
        fail "expected status 137 (128 + SIGKILL), the parent killed mid-map; got $status" \
            "$(reproduce)" || return 1
    assert_stderr_empty
}

@test "a full disk is an error: status 1 and one line, map: stdout: No space left on device" {
    run_prog --stdout /dev/full -j 2 8
    expect_failure '^map: stdout: No space left on device$' \
        "hint: print_list() (given) checks the final flush of stdout and ferror()." || return 1
    assert_pool_of 2
    run_prog --stdout /dev/full -h
    expect_failure '^map: stdout: No space left on device$'
}

@test "a closed stdout is an error, and the list goes into no pipe and no trace file" {
    [ "${FORKLINGS_VALGRIND:-}" = 1 ] && skip "valgrind opens its log file on the closed descriptor 1, which then takes the program's stdout"
    # With fd 1 closed, the trace file (or a pipe) would take number 1, and
    # the list would go into it: pool_start() first puts /dev/null,
    # read-only, on every closed standard descriptor.
    export POOL_TRACE=$BATS_TEST_TMPDIR/run.trace
    run_prog --close 1 -j 2 -c 1 8
    expect_failure '^map: stdout: Bad file descriptor$' \
        "hint: open_standard_fds() (given) must run before pool_start() opens anything." ||
        return 1
    ! grep -q '^\[' "$POOL_TRACE" ||
        fail "the list went into the trace file $POOL_TRACE:" "$(grep '^\[' "$POOL_TRACE" | head -c 200)" \
            "hint: open() and pipe() return the lowest free descriptor: 1, when stdout is" \
            "      closed. Keep open_standard_fds() (given) first in pool_start()." "$(reproduce)"
}

@test "runs as usual with stdin or stderr closed" {
    local fd
    for fd in 0 2; do
        run_prog --close "$fd" -j 3 -c 2 20
        assert_status 0
        assert_list "$(squares 20)"
    done
}

@test "prints the list and exits 0 through | head -1" {
    run_prog --head 1 -j 4 -c 1 -d 5 20
    assert_status 0
    assert_stderr_empty
    assert_list "$(squares 20)"
}

@test "too few descriptors (ulimit -n 10): status 1, one line, the workers started are ended" {
    [ "${FORKLINGS_VALGRIND:-}" = 1 ] && skip "valgrind needs descriptors of its own, more than --nofile leaves"
    # Each worker costs 4 descriptors while it starts and 2 afterwards: with
    # 10, the third worker's second pipe fails. The workers already started
    # must be ended and reaped (the guard counts what is left).
    run_prog --nofile 10 -j 8 16
    expect_failure '^map: pipe: Too many open files$' || return 1
    assert_forked_at_least 1
}

@test "fork() failing (ulimit -u): status 1, one line, the workers started are ended" {
    run_prog --fork-fails-after 2 -j 4 16
    expect_failure '^map: fork: Resource temporarily unavailable$' || return 1
    assert_pool_of 2
}

@test "prints the same list when stdout is a file" {
    run_prog --stdout-file -j 2 -c 3 25
    assert_status 0
    assert_list "$(squares 25)"
}

@test "prints what Python prints for p.map(sqr, range(1000))" {
    command -v python3 >/dev/null 2>&1 || skip "python3 is not installed"
    local want=$BATS_TEST_TMPDIR/python
    python3 -c 'print([x * x for x in range(1000)])' >"$want"
    run_prog -j 4 -d 1 1000
    assert_status 0
    assert_list "$want"
}

@test "takes N after -- (options end there)" {
    run_prog -j 2 -- 3
    assert_status 0
    assert_output "[0, 1, 4]"
}

@test "-h prints usage on stdout and exits 0" {
    run_prog -h
    assert_status 0
    assert_match '^usage: map ' "$output" "stdout"
    assert_stderr_empty
}

@test "rejects bad arguments with one line on stderr and status 2" {
    local args
    for args in "-j 0 5" "-j abc 5" "-j -3 5" "-j 99999 5" "-j" "-c 0 5" "-c x 5" \
        "-d -1 5" "-d 99999 5" "-s seed 5" "" "abc" "-- -1" "1x" "99999999999" \
        "5 6" "-x 5"; do
        # shellcheck disable=SC2086 # split args on purpose
        run_prog $args
        assert_usage_error
    done
}
