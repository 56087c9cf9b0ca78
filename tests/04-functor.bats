#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Lesson 04 functor: multi-argument maps through a functor, and starmap.
# The starter fails: "reproduces the seed: Instance(0) is 6, Instance(1) is 15, the map gives [15, 24, 33, 42, 51]"

# shellcheck disable=SC2154 # status, output, g_* are set by lib/harness
load lib/harness

SEED_OUTPUT="Instance(0) = 6
Instance(1) = 15
[15, 24, 33, 42, 51]"

# random_values N SEED: N numbers within -1000000..1000000, one a line.
random_values() {
    awk -v n="$1" -v s="$2" 'BEGIN {
        srand(s)
        for (i = 0; i < n; i++) printf "%d\n", int(rand() * 2000001) - 1000000
    }'
}

# shorten_cmd LIST SHOWN: in the command a failure prints, show SHOWN in
# place of LIST (a long run of X values).
shorten_cmd() {
    g_cmd=${g_cmd/"$1"/"$2"}
}

# values_file NAME X...: write the X values to a file of the test, one a
# line, and print the shell words that give them back: a reproduce line
# shows "$(cat build/check/04/N/NAME)" rather than hundreds of numbers.
values_file() {
    local name=$1
    shift
    printf '%s\n' "$@" >"$BATS_TEST_TMPDIR/$name"
    echo "\$(cat $BATS_TEST_TMPDIR/$name)"
}

# assert_list FILE: stdout is exactly FILE's one line, a long list. On a
# difference, name the first items that differ rather than show two huge
# lines.
assert_list() {
    local got=$BATS_TEST_TMPDIR/stdout
    cmp -s "$1" "$got" && return 0
    fail "stdout is not the expected list; the first differences:" \
        "$(paste -d ' ' <(items "$1") <(items "$got") | awk '$1 != $2 {
            printf "  item %d: expected %s, got %s\n", NR - 1,
                ($1 == "" ? "nothing" : $1), ($2 == "" ? "nothing" : $2)
            if (++shown == 5) exit }')" "$(reproduce)"
}

# items FILE: FILE's list, one item a line.
items() {
    sed 's/^\[//; s/\]$//; s/, /\n/g' "$1" | sed '/^$/d'
}

# python_list Y Z X...: what Python prints for list(map(Functor(Y, Z), xs)).
python_list() {
    python3 - "$@" <<'EOF'
import sys

def Multi(x, y, z):
    return z * (x * z + y)

class Functor(object):
    def __init__(self, y, z):
        self.y = y
        self.z = z
    def __call__(self, x):
        return Multi(x, self.y, self.z)

y, z, *xs = map(int, sys.argv[1:])
print(list(map(Functor(y, z), xs)))
EOF
}

# assert_seed_output: the three lines of the seed, with a hint naming the
# part that is wrong.
assert_seed_output() {
    [ "$output" = "$SEED_OUTPUT" ] && return 0
    local hint
    if [ "${lines[0]:-}" != "Instance(0) = 6" ] || [ "${lines[1]:-}" != "Instance(1) = 15" ]; then
        hint="hint: the parent computes Instance(0) and Instance(1) itself, with no
      worker: look at multi(), functor_make() and functor_call()."
    else
        case ${stderr:-} in
        *"no worker holds a chunk"*)
            hint="hint: pool_map() runs lesson 03's loop, but no chunk went out: send_chunk()
      must write the task record and note the chunk (w->first, w->count)." ;;
        *"exited with status 0 before sending"*)
            hint="hint: a worker left without answering: does read_task() return 1 for a
      record, and does worker_main() loop, sending each result back whole?" ;;
        *"killed by signal 11"*)
            hint="hint: a worker called through a null function pointer: the functor did
      not get into the task record (send_chunk()) or out of it (read_task())." ;;
        *)
            hint="hint: Instance works in the parent, but the workers compute the list: the
      functor goes into the record (send_chunk()), comes out in the worker
      (read_task()), is applied (apply_task()); an all-zero list with nothing
      on stderr: pool_map() or pool_starmap() is still a stub." ;;
        esac
    fi
    fail "expected stdout:" "$SEED_OUTPUT" "actual stdout:" "${output:-(empty)}" \
        "stderr was: $(show_stderr)" "$hint" "$(reproduce)"
}

@test "reproduces the seed: Instance(0) is 6, Instance(1) is 15, the map gives [15, 24, 33, 42, 51]" {
    run_prog
    assert_seed_output
    assert_status 0
    assert_stderr_empty
}

@test "reproduces the seed's list with any number of workers" {
    local j
    for j in $(sweep 1 2 5 8); do
        run_prog -j "$j"
        assert_seed_output
        assert_status 0
    done
}

@test "starmap over the tuples (X, Y, Z) gives the seed's list too (-t)" {
    run_prog -t
    assert_seed_output
    assert_status 0
    run_prog -t -j 3 2 3 1 2 3 4 5
    assert_status 0
    assert_output "[15, 24, 33, 42, 51]"
}

@test "maps Functor(Y, Z) over the X values given" {
    run_prog -j 2 5 7 0 1 2
    assert_status 0
    assert_output "[35, 84, 133]"
    run_prog -j 3 0 0 1 2
    assert_status 0
    assert_output "[0, 0]"
    run_prog -j 1 2 3 0 1
    assert_status 0
    assert_output "[6, 15]"
}

@test "takes negative numbers after --" {
    run_prog -j 2 -- -4 9 -1 0 1 -100
    assert_status 0
    assert_output "[-117, -36, 45, -8136]"
    run_prog -- 3 -2 -5 5
    assert_status 0
    assert_output "[-26, 14]"
}

@test "maps an empty list of X values to []" {
    run_prog -j 2 2 3
    assert_status 0
    assert_output "[]"
    run_prog -t -j 2 2 3
    assert_status 0
    assert_output "[]"
}

@test "starmap equals map of the equivalent functor, for 500 values and 1 to 3 workers" {
    local -a xs
    local map_out j yz shown
    mapfile -t xs < <(random_values 500 11)
    shown=$(values_file xs.txt "${xs[@]}")
    for yz in "-7 1000" "1000000 -1000000"; do
        for j in 1 3; do
            # shellcheck disable=SC2086 # Y and Z, split on purpose
            run_prog -j "$j" -- $yz "${xs[@]}"
            shorten_cmd "${xs[*]}" "$shown"
            assert_status 0
            map_out=$output
            # shellcheck disable=SC2086
            run_prog -t -j "$j" -- $yz "${xs[@]}"
            shorten_cmd "${xs[*]}" "$shown"
            assert_status 0
            [ "$output" = "$map_out" ] ||
                fail "starmap and map disagree for Y Z = $yz with $j workers." \
                    "map:     ${map_out:0:200}" "starmap: ${output:0:200}" "$(reproduce)"
        done
    done
}

@test "prints what Python prints for the same functor, negative numbers included" {
    command -v python3 >/dev/null 2>&1 || skip "python3 is not installed"
    local -a xs
    local yz
    mapfile -t xs < <(random_values 200 5)
    for yz in "-1000000 1000000" "999 -31"; do
        # shellcheck disable=SC2086 # Y and Z, split on purpose
        run_prog -j 3 -- $yz "${xs[@]}"
        shorten_cmd "${xs[*]}" "$(values_file xs.txt "${xs[@]}")"
        assert_status 0
        # shellcheck disable=SC2086
        assert_output "$(python_list $yz "${xs[@]}")"
    done
}

@test "bound arguments made after the workers started reach them by value" {
    # functor.c starts the pool first and makes the functor afterwards: the
    # workers' own memory holds only Functor(0, 0). The right list proves
    # that Y and Z came through the pipe inside each task.
    run_prog -j 2 -- 7 -2 1 2 3
    assert_status 0
    assert_output "[-10, -6, -2]"
}

@test "with -b the workers get the functor's address and compute with their stale Functor(0, 0)" {
    run_prog -b -j 2
    assert_status 0
    assert_output "Instance(0) = 6
Instance(1) = 15
[0, 0, 0, 0, 0]"
    run_prog -b -j 2 -- 7 -2 1 2 3
    assert_status 0
    assert_output "[0, 0, 0]"
}

@test "gives exact results at the limits, where Multi is near 10^18 (no overflow)" {
    run_prog -j 2 1000000 1000000 1000000 -1000000
    assert_status 0
    assert_output "[1000001000000000000, -999999000000000000]"
    run_prog -j 2 -- -1000000 -1000000 1000000
    assert_status 0
    assert_output "[1000001000000000000]"
    run_prog -t -j 2 -- -1000000 1000000 -1000000
    assert_status 0
    assert_output "[-1000001000000000000]"
}

@test "rejects numbers beyond ±1,000,000, where Multi could overflow, with status 2" {
    local args
    for args in "1000001 1 1" "1 -1000001 1" "1 1 1000001" "1 1 -1000001" \
        "1 1 99999999999999999999" "1 1 5 -9223372036854775808"; do
        # shellcheck disable=SC2086 # split args on purpose
        run_prog -- $args
        assert_usage_error
        assert_match 'from -1000000 to 1000000' "${stderr_lines[0]}" "the error line"
    done
}

@test "maps 4,000 values with 4 workers, map and starmap alike" {
    local want=$BATS_TEST_TMPDIR/want
    local -a xs
    mapfile -t xs < <(seq -2000 1999)
    awk 'BEGIN {
        printf "["
        for (x = -2000; x < 2000; x++) printf (x > -2000 ? ", %.0f" : "%.0f"), -3 * (x * -3 + 7)
        print "]"
    }' >"$want"
    run_prog -j 4 -- 7 -3 "${xs[@]}"
    shorten_cmd "${xs[*]}" "\$(seq -2000 1999)"
    assert_status 0
    assert_list "$want"
    run_prog -t -j 4 -- 7 -3 "${xs[@]}"
    shorten_cmd "${xs[*]}" "\$(seq -2000 1999)"
    assert_status 0
    assert_list "$want"
}

@test "maps 40,000 values with 1 worker: records bigger than a pipe, map and starmap alike" {
    # One worker: chunksize ceil(40000 / 4) = 10000, so each map record,
    # task or result, holds 80,000 bytes of values and each starmap task
    # 240,000. A pipe holds 65,536 bytes, so no read() can return a whole
    # record: only a reader that loops until it has every byte gets the list.
    local want=$BATS_TEST_TMPDIR/want
    local -a xs
    mapfile -t xs < <(seq -20000 19999)
    awk 'BEGIN {
        printf "["
        for (x = -20000; x < 20000; x++) printf (x > -20000 ? ", %.0f" : "%.0f"), 5 * (x * 5 - 11)
        print "]"
    }' >"$want"
    run_prog -j 1 -- -11 5 "${xs[@]}"
    shorten_cmd "${xs[*]}" "\$(seq -20000 19999)"
    assert_status 0
    assert_list "$want"
    run_prog -t -j 1 -- -11 5 "${xs[@]}"
    shorten_cmd "${xs[*]}" "\$(seq -20000 19999)"
    assert_status 0
    assert_list "$want"
}

@test "holds at most WORKERS + 1 processes and reaps every worker" {
    run_prog -j 3 2 3 1 2 3 4 5 6 7 8 9
    assert_status 0
    assert_pool_of 3
}

@test "-h prints usage on stdout and exits 0" {
    run_prog -h
    assert_status 0
    assert_match '^usage: functor' "$output" "stdout"
    assert_stderr_empty
}

@test "rejects bad arguments with one line on stderr and status 2" {
    local args
    for args in "-j 0" "-j abc" "-j -3" "-j 99999" "-j" "-x" "2" "2 3 x" "2 3 1.5" \
        "a 3 1" "2 3 1 2x" "-b -t 2 3 1" "-- 2 3 --5" "-d -1" "-d x 2 3" "-d 10001 2 3"; do
        # shellcheck disable=SC2086 # split args on purpose
        run_prog $args
        assert_usage_error
    done
}

# ---- the fault matrix: killed, stopped, closed, full, limited --------------

# -d 5000: every item sleeps 5 s. Two workers, two items: each worker holds
# one, so that a test can find both in the middle of a task (--kill ..@busy).
LONG_MAP=(-j 2 -d 5000 2 3 1 2)

# After a failed test whose program hung: the test's own HANG_HINT, if set.
lesson_teardown() {
    if [ -z "${BATS_TEST_COMPLETED:-}" ] && [ "${g_timeout:-0}" = 1 ] && [ -n "${HANG_HINT:-}" ]; then
        printf '%s\n' "$HANG_HINT" >&2
    fi
}

# assert_no_orphans: no worker was left running after its parent was
# killed (the run tolerated survivors, to say why here).
assert_no_orphans() {
    [ "$g_survivors" = 0 ] && return 0
    fail "$g_survivors worker(s) still ran a second after their parent was killed (pids $g_survivor_pids)." \
        "hint: a killed parent runs no clean-up at all: right after fork(), each worker" \
        "      asks the kernel to kill it when its parent dies (die_with_parent()," \
        "      prctl(PR_SET_PDEATHSIG)), or it sleeps on through its task." "$(reproduce)"
}

@test "no worker outlives its parent killed in the middle of a task" {
    # SIGKILL to the parent while both workers sleep in their 5 s items: no
    # clean-up of the parent can run. --linger 1: any worker still there a
    # second after the parent died fails the test; only the kernel's
    # parent-death signal ends a worker that soon. The workers that died
    # with it are zombies no one can reap (its parent was SIGKILLed): not a
    # fault, hence --tolerate unreaped.
    run_prog --kill KILL@busy --linger 1 --tolerate unreaped --tolerate survivors "${LONG_MAP[@]}"
    assert_status 137
    assert_stderr_empty
    assert_no_orphans
}

@test "a worker killed in the middle of a task: status 1, one line, no worker left" {
    run_prog --kill w0/KILL@busy "${LONG_MAP[@]}"
    assert_status 1
    assert_output ""
    assert_one_stderr_line '^functor: worker [0-9]+ killed by signal 9 before sending the results for items 0 to 0$'
}

@test "a stopped worker does not hang the exit after another worker died" {
    # Worker 1 is stopped (SIGSTOP), then worker 0 killed: the program fails,
    # and must end the stopped worker too. A stopped process acts on no
    # signal but SIGKILL and SIGCONT: a SIGTERM stays pending, and closing
    # its pipes does nothing while it sleeps stopped.
    HANG_HINT="hint: leave() must end every worker, also a stopped one: SIGKILL
      ends a stopped process; anything else waits for SIGCONT."
    run_prog --kill w1/STOP@busy --kill w0/KILL@stopped "${LONG_MAP[@]}"
    assert_status 1
    assert_one_stderr_line '^functor: worker [0-9]+ killed by signal 9 before sending the results for items 0 to 0$'
}

@test "a full disk on stdout (/dev/full): status 1 and one line that names stdout" {
    local args
    for args in "" "-j 2 2 3 1 2 3"; do
        # shellcheck disable=SC2086 # split args on purpose
        run_prog --stdout /dev/full $args
        assert_status 1
        assert_one_stderr_line '^functor: stdout: No space left on device$'
    done
    run_prog --stdout /dev/full -h
    assert_status 1
    assert_one_stderr_line '^functor: stdout: No space left on device$'
}

@test "stdin closed changes nothing" {
    run_prog --close 0 -j 2
    assert_status 0
    assert_stderr_empty
    assert_output "$SEED_OUTPUT"
}

@test "stdout closed is a write error: status 1 and one line" {
    [ "${FORKLINGS_VALGRIND:-}" != 1 ] || skip "valgrind opens its log on the lowest free descriptor, the closed stdout: the output would go into its log"
    run_prog --close 1 -j 2
    assert_status 1
    assert_one_stderr_line '^functor: stdout: Bad file descriptor$'
    run_prog --close 0 --close 1 -j 3 2 3 1 2 3
    assert_status 1
    assert_one_stderr_line '^functor: stdout: Bad file descriptor$'
}

@test "| head -1: the first line, and nothing left" {
    run_prog --head 1 -j 2
    assert_status 0
    assert_stderr_empty
    [ "${lines[0]:-}" = "Instance(0) = 6" ] ||
        fail "expected the first line 'Instance(0) = 6', got:" "${output:-(empty)}" "$(reproduce)"
}

@test "too few descriptors (ulimit -n): status 1, one line, the workers started are reaped" {
    [ "${FORKLINGS_VALGRIND:-}" != 1 ] || skip "valgrind needs descriptors of its own: ulimit -n 8 is too low for it"
    # 8 descriptors: 0 to 2, and room for the pipes of one worker only.
    run_prog --nofile 8 -j 4
    assert_status 1
    assert_output ""
    assert_one_stderr_line '^functor: pipe: Too many open files$'
    assert_forked_at_least 1
}

@test "fork() failing (ulimit -u): status 1, one line, the workers started are reaped" {
    run_prog --fork-fails-after 2 -j 4
    assert_status 1
    assert_output ""
    assert_one_stderr_line '^functor: fork: Resource temporarily unavailable$'
    assert_pool_of 2
}
