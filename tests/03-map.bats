#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Lesson 03 map: Pool.map in C; the list comes back in input order.
# The starter fails: "prints the squares of 0..9 in input order, as Python prints the list"

# shellcheck disable=SC2154 # status, output, g_* are set by lib/harness
load lib/harness

# squares N: a file holding the line Python prints for [x*x for x in range(N)].
squares() {
    local f=$BATS_TEST_TMPDIR/squares-$1
    awk -v n="$1" 'BEGIN {
        printf "["
        for (i = 0; i < n; i++) printf (i ? ", %.0f" : "%.0f"), i * i
        print "]"
    }' >"$f"
    echo "$f"
}

# items FILE: FILE's list, one item a line.
items() {
    sed 's/^\[//; s/\]$//; s/, /\n/g' "$1" | sed '/^$/d'
}

# assert_list FILE: stdout is exactly FILE's one line. On a difference, name
# the first items that differ rather than show two huge lines.
assert_list() {
    local got=$BATS_TEST_TMPDIR/stdout
    cmp -s "$1" "$got" && return 0
    local want_items=$BATS_TEST_TMPDIR/want-items got_items=$BATS_TEST_TMPDIR/got-items
    items "$1" >"$want_items"
    items "$got" >"$got_items"
    fail "stdout is not the expected list: $(wc -l <"$want_items") items expected," \
        "$(wc -l <"$got_items") found; the first differences:" \
        "$(paste -d ' ' "$want_items" "$got_items" | awk '$1 != $2 {
            printf "  item %d: expected %s, got %s\n", NR - 1, ($1 == "" ? "nothing" : $1), ($2 == "" ? "nothing" : $2)
            if (++shown == 5) exit }')" \
        "hint: each result record names the index of its first item; store the" \
        "      values at out[first], out[first + 1], ... whatever order records" \
        "      arrive in." "$(reproduce)"
}

# v_field NAME: the number after NAME in the -v line on stderr.
v_field() {
    sed -nE "s/.*[ :]$1 ([0-9]+).*/\\1/p" <<<"$stderr" | head -1
}

# After a failed test: a hint that names the function of this lesson most
# likely at fault, from what the program said or where it hung.
teardown() {
    [ -z "${BATS_TEST_COMPLETED:-}" ] || return 0
    local hint=()
    case ${stderr:-} in
    *"cut short"*)
        hint=("read() on a pipe may return fewer bytes than you asked for, long"
            "before end-of-file: readn() must loop until it has all n bytes.") ;;
    *"exited without the results"*)
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
            "${stderr:-(nothing)}" "$(reproduce)"
}

@test "maps a single item to [0]" {
    run_prog -j 4 1
    assert_status 0
    assert_output "[0]"
}

@test "gives the same list for every worker count and chunksize" {
    local j c want
    want=$(squares 37)
    for j in 1 2 3 8; do
        for c in 1 4 37 default; do
            if [ "$c" = default ]; then run_prog -j "$j" 37; else run_prog -j "$j" -c "$c" 37; fi
            assert_status 0
            assert_list "$want"
        done
    done
}

@test "keeps input order when each item sleeps a random while (-d)" {
    local seed want
    want=$(squares 40)
    for seed in 1 2 3; do
        run_prog -j 4 -c 1 -d 10 -s "$seed" 40
        assert_status 0
        assert_list "$want"
        run_prog -j 3 -c 3 -d 10 -s "$seed" 40
        assert_status 0
        assert_list "$want"
    done
}

@test "maps 200,000 items with 2 workers: records bigger than a pipe, no deadlock" {
    run_prog -v -j 2 200000
    assert_status 0
    assert_list "$(squares 200000)"
    [ "$(v_field records)" = 8 ] ||
        fail "expected 8 task records (chunksize 25000), -v said:" "$stderr" "$(reproduce)"
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
    local j n want
    for case in "4 10 1" "4 100 7" "4 1000 63" "2 200000 25000" "3 1 1" "1 8 2" "8 33 2"; do
        read -r j n want <<<"$case"
        run_prog -v -j "$j" "$n"
        assert_status 0
        [ "$(v_field chunksize)" = "$want" ] ||
            fail "for N = $n and $j workers expected chunksize $want, -v said:" \
                "${stderr:-(nothing)}" "$(reproduce)"
    done
}

@test "sends ceil(N / CHUNKSIZE) task records (-c)" {
    local c n want
    for case in "7 100 15" "1 10 10" "1000 10 1" "5 5 1" "2 5 3"; do
        read -r c n want <<<"$case"
        run_prog -v -j 2 -c "$c" "$n"
        assert_status 0
        assert_list "$(squares "$n")"
        [ "$(v_field records)" = "$want" ] ||
            fail "for N = $n and chunksize $c expected $want task records, -v said:" \
                "${stderr:-(nothing)}" "$(reproduce)"
    done
}

@test "holds at most WORKERS + 1 processes and reaps every worker" {
    run_prog -j 3 -c 1 -d 5 30
    assert_status 0
    assert_list "$(squares 30)"
    [ "$g_maxprocs" -le 4 ] ||
        fail "expected at most 4 processes (parent + 3 workers), saw $g_maxprocs" "$(reproduce)"
    [ "$g_maxprocs" -ge 2 ] ||
        fail "expected the parent to fork workers, saw only $g_maxprocs process" "$(reproduce)"
}

# children PID: the pids of PID's children, one a line.
children() {
    ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' '
}

# fd_count PID: how many descriptors PID holds; 0 once it has ended.
fd_count() {
    find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l
}

# look_into_workers: run map -j 4 -c 1 -d 300 64 in the background, under
# the guard (which leaves it only 0, 1 and 2 open), and while the workers
# sleep in their tasks (about two seconds) count each one's descriptors.
# Sets kids (the workers' pids) and fds (a count for each).
look_into_workers() {
    local dir=$BATS_TEST_TMPDIR g prog="" i n
    kids=()
    fds=()
    # shellcheck disable=SC2153 # PROG and GUARD come from lib/harness
    "$GUARD" -t "$(scaled 30)" -o "$dir/out" -e "$dir/err" -r "$dir/report" -- \
        "$PROG" -j 4 -c 1 -d 300 -s 3 64 3>&- &
    g=$!
    for _ in $(seq 100); do
        [ -n "$prog" ] || prog=$(children "$g" | head -1)
        [ -z "$prog" ] || mapfile -t kids < <(children "$prog")
        [ ${#kids[@]} -lt 4 ] || break
        kill -0 "$g" 2>/dev/null || break       # over already
        sleep 0.05
    done
    for i in "${!kids[@]}"; do
        fds[i]=$(fd_count "${kids[i]}")
    done
    if printf '%s\n' "${fds[@]}" | grep -qvx 5; then
        sleep 0.1               # a worker just forked may not have closed yet
        for i in "${!kids[@]}"; do
            n=$(fd_count "${kids[i]}")
            [ "${fds[i]}" = 5 ] || [ "$n" = 0 ] || fds[i]=$n
        done
    fi
    wait "$g" || true
}

@test "each worker holds only its own two pipe ends, besides stdin, stdout and stderr" {
    [ -d /proc/self/fd ] || skip "needs /proc (Linux) to count a process's descriptors"
    [ "${FORKLINGS_VALGRIND:-}" = 1 ] && skip "valgrind holds descriptors of its own"
    local kids fds i shown=()
    look_into_workers
    [ ${#kids[@]} = 4 ] || look_into_workers    # a loaded machine: once more
    [ ${#kids[@]} = 4 ] ||
        fail "expected to see 4 workers while they sleep in their tasks, saw ${#kids[@]}" || return 1
    printf '%s\n' "${fds[@]}" | grep -qvx 5 || return 0
    for i in "${!kids[@]}"; do
        shown+=("  worker ${kids[i]}: ${fds[i]} descriptors")
    done
    fail "each worker should hold 5 descriptors: 0, 1, 2, its task pipe's read end" \
        "and its result pipe's write end (0: it had ended already). Found:" "${shown[@]}" \
        "hint: a worker inherits the parent's ends of every pipe made before it;" \
        "      it must close them, or its siblings never see end-of-file." \
        "to reproduce:  $PROG_REL -j 4 -c 1 -d 300 64, and ls -l /proc/PID/fd of a worker"
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
