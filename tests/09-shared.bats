#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Lesson 09 shared: a map in shared memory; chunks claimed with an atomic
# counter, progress down a pipe, a dead worker's chunk run again.
# The starter fails: "prints the squares of 0..9 in input order, as Python prints the list"

# shellcheck disable=SC2154,SC2030,SC2031 # status, output, g_* are set by lib/harness
load lib/harness

# What assert_list (lib/harness) says when an item is out of place.
# shellcheck disable=SC2034 # read by lib/harness
LIST_HINT=("hint: item i's result belongs at out[i], the same index as its input:"
    "      run_chunk() covers items c * chunksize up to the next chunk's first"
    "      (or n), and a chunk no worker finished is run again by the parent.")

# The -v line on stderr, read into v_chunks (the chunks), v_by (what each
# worker reported done, a list) and v_rerun (what the parent ran again).
read_report() {
    local line
    line=$(grep -E '^shared: [0-9]+ items, ' <<<"$stderr" | head -1)
    v_chunks=$(sed -nE 's/.*, ([0-9]+) chunks;.*/\1/p' <<<"$line")
    v_by=$(sed -nE 's/.*done by each worker:([ 0-9]*);.*/\1/p' <<<"$line")
    v_rerun=$(sed -nE 's/.*run again by the parent: ([0-9]+);.*/\1/p' <<<"$line")
    { [ -n "$v_chunks" ] && [ -n "$v_rerun" ]; } ||
        fail "expected a -v line on stderr, 'shared: N items, ... K chunks; done by each" \
            "worker: A B ...; run again by the parent: R; time T ms', got:" \
            "$(show_stderr)" "$(reproduce)"
}

# assert_each_chunk_once CHUNKS RERUN: the -v line says CHUNKS chunks, the
# workers' counts and the parent's add up to exactly that (none lost, none
# done twice), and the parent ran RERUN of them again.
assert_each_chunk_once() {
    local v_chunks v_by v_rerun sum=0 k
    read_report || return 1
    for k in $v_by; do sum=$((sum + k)); done
    [ "$v_chunks" = "$1" ] && [ $((sum + v_rerun)) = "$1" ] && [ "$v_rerun" = "$2" ] && return 0
    fail "expected $1 chunks, each done exactly once: by a worker (one byte on its" \
        "pipe), or by the parent, which should have run $2 again. -v said" \
        "$v_chunks chunks, done by each worker:$v_by (sum $sum), by the parent: $v_rerun." \
        "hint: a sum above the chunks means a chunk was done twice: is the counter" \
        "      in the memory every worker shares (MAP_SHARED), and claimed with" \
        "      one atomic read-modify-write? Below, a byte was lost or a chunk never" \
        "      claimed: one byte per chunk, and read every byte the pipes bring." \
        "$(reproduce)"
}

# After a failed test: a hint that names the function of this lesson most
# likely at fault, from what the program said or where it hung.
lesson_teardown() {
    stop_background             # a test that failed while its run went on
    [ -z "${BATS_TEST_COMPLETED:-}" ] || return 0
    local hint=()
    case ${stderr:-} in
    *"mapped nothing"*)
        hint=("map_region() must map the memory (TODO 1) and set m->sh.") ;;
    *"was never reaped"*)
        hint=("await_workers() must go on until every worker's pipe has given"
            "end-of-file, and bury_worker() must reap each (TODO 5 and 6).") ;;
    esac
    if [ "${g_timeout:-0}" = 1 ] && [[ ${g_stuck:-} == *poll* ]]; then
        hint=("the parent waits in poll() for a byte or end-of-file that never comes."
            "Does each worker end (_exit) once claim_chunk() returns -1, and does"
            "await_workers() stop polling a pipe once it has been buried (fd -1)?")
    fi
    [ ${#hint[@]} -gt 0 ] || return 0
    printf 'hint: %s\n' "${hint[0]}" >&2
    [ ${#hint[@]} -lt 2 ] || printf '      %s\n' "${hint[@]:1}" >&2
}

# ---- the list ---------------------------------------------------------

@test "prints the squares of 0..9 in input order, as Python prints the list" {
    run_prog -j 3 10
    assert_status 0
    assert_stderr_empty
    assert_output "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]"
}

@test "maps an empty input to [] with no chunk, and a single item to [0]" {
    run_prog -v -j 2 0
    assert_status 0
    assert_output "[]"
    assert_each_chunk_once 0 0 || return 1
    run_prog -j 4 1
    assert_status 0
    assert_output "[0]"
    assert_stderr_empty
}

@test "gives the same list for every worker count and chunksize, each chunk done once" {
    local j c want chunks
    want=$(squares 37)
    for j in $(sweep 1 2 3 8); do
        for c in $(sweep 1 4 36 37 default); do
            if [ "$c" = default ]; then
                run_prog -v -j "$j" 37
                c=$(((37 + 4 * j - 1) / (4 * j)))
            else
                run_prog -v -j "$j" -c "$c" 37
            fi
            assert_status 0
            assert_list "$want"
            chunks=$(((37 + c - 1) / c))
            assert_each_chunk_once "$chunks" 0 || return 1
        done
    done
}

@test "maps 1,000,000 items exactly, with 2 and 3 workers" {
    run_prog -v -j 2 1000000
    assert_status 0
    assert_list "$(squares 1000000)"
    assert_each_chunk_once 8 0 || return 1
    run_prog -j 3 -c 1000 1000000
    assert_status 0
    assert_list "$(squares 1000000)"
}

@test "the workers share one counter: each of 1,000 chunks is claimed by exactly one worker" {
    local j
    for j in $(sweep 2 4); do
        run_prog -v -j "$j" -c 1 1000
        assert_status 0
        assert_list "$(squares 1000)"
        assert_each_chunk_once 1000 0 || return 1
    done
}

@test "a fast worker claims more: with worker 0 lagging (-l), the others claim all but its one chunk" {
    # -l: worker 0 starts its first chunk only once every chunk has been
    # claimed. So it does at most one (none, if the others claimed them all
    # before it asked), and the others do the rest, however the machine
    # schedules them: only chunks claimed one at a time by whoever is free
    # give that; a split fixed in advance would leave worker 0 its share.
    local case j c n chunks by cases v_chunks v_by v_rerun
    mapfile -t cases <<<"$(sweep "2 1 20" "3 2 60" "4 5 100")"
    for case in "${cases[@]}"; do
        read -r j c n <<<"$case"
        run_prog -v -l -j "$j" -c "$c" "$n"
        assert_status 0
        assert_list "$(squares "$n")"
        chunks=$(((n + c - 1) / c))
        assert_each_chunk_once "$chunks" 0 || return 1
        read_report
        read -ra by <<<"$v_by"
        [ "${#by[@]}" = "$j" ] && [ "${by[0]}" -le 1 ] ||
            fail "with -l, worker 0 claims its first chunk and waits: it should do at most" \
                "1 of the $chunks chunks, and $((j - 1)) other worker(s) the rest." \
                "-v said: done by each worker:$v_by" \
                "hint: each worker must claim its next chunk from the shared counter when" \
                "      it is free (claim_chunk()), not take a share fixed in advance." \
                "$(reproduce)" || return 1
    done
}

@test "claim_chunk() takes chunks with one atomic read-modify-write instruction" {
    # Two workers that load the counter and then store it plus one can both
    # load the same value and run the same chunk: a race no test can make
    # happen on demand. So the machine code is read instead: a correct
    # claim has an atomic read-modify-write (x86-64: a lock-prefixed
    # instruction, as atomic_fetch_add compiles to; arm64: ldadd, cas or a
    # ldaxr/stlxr pair); a load and a store have none.
    command -v objdump >/dev/null 2>&1 || skip "objdump is not installed: the machine code cannot be read"
    local arch code
    arch=$(uname -m)
    case $arch in x86_64 | aarch64 | arm64) ;; *) skip "reads x86-64 or arm64 machine code only" ;; esac
    # shellcheck disable=SC2153 # PROG comes from lib/harness
    code=$(objdump -d --no-show-raw-insn "$PROG" 2>/dev/null | awk '
        /^[0-9a-f]+ <[^>]+>:$/ { inside = ($2 == "<claim_chunk>:"); next }
        inside')
    if [ -z "$code" ]; then
        # An optimising build (CFLAGS=-O2) may have inlined it: then no
        # instruction can be said to be the claim's.
        grep -q '^[[:space:]]*claim_chunk(' "$FORKLINGS_ROOT/$TREE/$LESSON/smap.c" &&
            skip "claim_chunk() was inlined (an optimising CFLAGS?): its instructions cannot be told apart"
        fail "the program has no function claim_chunk(): keep that name" || return 1
    fi
    if grep -qE $'\tlock |\tldadd|\tcas|\tldaxr|\tldxr|\tswp|__aarch64_(ldadd|cas|swp)' <<<"$code"; then
        return 0
    fi
    fail "claim_chunk() has no atomic read-modify-write instruction: two workers can" \
        "read the same counter value before either writes it back, and run the same" \
        "chunk twice." \
        "hint: one call both reads and adds (<stdatomic.h>); a load followed by a" \
        "      store, even of an atomic, is two steps."
}

@test "holds at most WORKERS + 1 processes and reaps every worker" {
    run_prog -j 3 -c 1 -d 5 30
    assert_status 0
    assert_list "$(squares 30)"
    assert_pool_of 3
}

@test "prints what Python prints for [x * x for x in range(1000)]" {
    command -v python3 >/dev/null 2>&1 || skip "python3 is not installed"
    local want=$BATS_TEST_TMPDIR/python
    python3 -c 'print([x * x for x in range(1000)])' >"$want"
    run_prog -j 4 -c 9 1000
    assert_status 0
    assert_list "$want"
}

# ---- processes, descriptors, mappings -----------------------------------

# look_into_pool: run shared -j 3 -c 1 -d 1000 -s 3 300 in the background
# under the guard (which leaves it only 0, 1 and 2 open): some 50 s of
# sleeping items. Once the parent sleeps in poll() (every worker forked)
# and each worker in nanosleep() (an item), the descriptors they hold no
# longer change: count them. Sets prog, pfds, kids and fds.
look_into_pool() {
    local i
    pfds="" kids=() fds=()
    start_background -- -j 3 -c 1 -d 1000 -s 3 300
    prog=$bg_prog
    [ -n "$prog" ] && await_wchan "$prog" 'poll' ||
        fail "expected the parent to sleep in poll() while its workers work: it should" \
            "wait for a byte or end-of-file on their pipes, never look at the shared" \
            "memory in a loop. It is ${prog:+$(wchan_of "$prog")}${prog:-gone}." \
            "hint: await_workers() (TODO 5) waits in poll() on every worker's pipe." \
            "to reproduce:  $PROG_REL -j 3 -c 1 -d 1000 -s 3 300" || return 1
    pfds=$(fd_count "$prog")
    mapfile -t kids < <(children "$prog")
    for i in "${!kids[@]}"; do
        await_wchan "${kids[i]}" 'nanosleep|hrtimer' ||
            fail "expected worker ${kids[i]} to sleep in an item (nanosleep)" \
                "to reproduce:  $PROG_REL -j 3 -c 1 -d 1000 -s 3 300" || return 1
        fds[i]=$(fd_count "${kids[i]}")
    done
    stop_background
}

@test "the parent sleeps in poll() while the workers work; each process holds only its own pipe ends" {
    [ -d /proc/self/fd ] || skip "needs /proc (Linux) to count a process's descriptors"
    have_wchan || skip "needs /proc/PID/wchan to see where a process waits"
    [ "${FORKLINGS_VALGRIND:-}" = 1 ] && skip "valgrind holds descriptors of its own"
    local prog pfds kids fds i
    look_into_pool || return 1
    [ ${#kids[@]} = 3 ] ||
        fail "expected 3 workers while they sleep in their items, found ${#kids[@]}" || return 1
    [ "$pfds" = 6 ] ||
        fail "the parent should hold 6 descriptors: 0, 1, 2 and the read end of each" \
            "worker's pipe. It holds $pfds." \
            "hint: after fork() the parent closes the worker's write end (given code in" \
            "      start_worker()): else that pipe never gives end-of-file." || return 1
    for i in "${!kids[@]}"; do
        [ "${fds[i]}" = 4 ] ||
            fail "worker ${kids[i]} should hold 4 descriptors: 0, 1, 2 and its pipe's write" \
                "end; it holds ${fds[i]}." \
                "hint: a new worker closes the read ends it inherited (start_worker())." ||
            return 1
    done
}

@test "nothing is left open or mapped when the map is over (FORKLINGS_FD_REPORT)" {
    [ -r /proc/self/maps ] || skip "needs /proc/self/maps (Linux) to list the mappings"
    local report=$BATS_TEST_TMPDIR/resources args left
    for args in "-j 2 10" "-j 3 -c 1 100" "-j 2 0"; do
        rm -f "$report"
        # shellcheck disable=SC2086 # split args on purpose
        FORKLINGS_FD_REPORT=$report run_prog $args
        assert_status 0
        [ -s "$report" ] ||
            fail "the program wrote no resource report: report_resources() (given)" \
                "runs at exit; keep its atexit() in main()." "$(reproduce)" || return 1
        # The guard's counters and valgrind's files and gdb server memory
        # are not the program's.
        left=$(sed -E 's# \[[^]]*(guard-watch|vgdb-pipe)[^]]*\]##g; s# [0-9]+=[^ ;]*/vg\.[0-9]+\.log##g' "$report" |
            sed -E 's/^([0-9]+): fds;/\1: fds none;/; s/shared maps$/shared maps none/')
        [[ $left =~ ^[0-9]+:\ fds\ none\;\ shared\ maps\ none$ ]] ||
            fail "at exit the parent still had (pid: descriptors above 2; shared mappings):" \
                "  $left" \
                "hint: unmap_region() (TODO 8) gives the mapping back with the call that" \
                "      undoes mmap(), and await_workers() leaves no pipe open." \
                "$(reproduce)" || return 1
    done
}

@test "no worker outlives its killed parent by more than about a second" {
    run_prog --kill KILL@busy --linger 1 --tolerate unreaped --tolerate survivors \
        -j 2 -c 20 -d 1000 40
    [ "$g_survivors" = 0 ] ||
        fail "$g_survivors worker(s) still ran a second after their parent was killed." \
            "hint: die_with_parent() (given) must run in each new worker, first thing." \
            "$(reproduce)" || return 1
    [ "$status" = 137 ] ||
        fail "expected status 137 (128 + SIGKILL), the parent killed mid-map; got $status" \
            "$(reproduce)" || return 1
    assert_stderr_empty
}

# ---- a worker that dies -------------------------------------------------

# assert_death_line: the one line about a killed worker names a whole chunk
# (chunksize $1, n $2); sets held_first.
assert_death_line() {
    local re='^shared: worker [0-9]+ killed by signal 9 while it held items ([0-9]+) to ([0-9]+): the parent runs them again$'
    local c=$1 n=$2 first last end
    [[ ${stderr_lines[0]:-} =~ $re ]] ||
        fail "expected the first line on stderr to be like" \
            "  shared: worker PID killed by signal 9 while it held items A to B: the parent runs them again" \
            "got:" "$(show_stderr)" \
            "hint: bury_worker() reports a worker that did not exit with 0, with the" \
            "      chunk its record says it held and had not finished (report_death())." \
            "$(reproduce)" || return 1
    first=${BASH_REMATCH[1]} last=${BASH_REMATCH[2]}
    end=$((first + c - 1))
    [ "$end" -lt "$n" ] || end=$((n - 1))
    { [ $((first % c)) = 0 ] && [ "$last" = "$end" ]; } ||
        fail "items $first to $last are not one chunk of $c items (of $n)" "$(reproduce)"
}

@test "a worker killed mid-chunk: the parent runs its chunk again, the list is whole, one line says so" {
    without_leak_tracer
    # Both workers sleep in an item of their chunk when the guard kills
    # worker 0: it holds a chunk it has not finished. The parent must see
    # its end (end-of-file on its pipe), reap it, and run that chunk again.
    run_prog --kill w0/KILL@busy -v -j 2 -c 3 -d 200 -s 2 12
    assert_status 0
    assert_list "$(squares 12)"
    [ ${#stderr_lines[@]} = 2 ] ||
        fail "expected 2 lines on stderr, the worker's death and the -v line; got:" \
            "$(show_stderr)" "$(reproduce)" || return 1
    assert_death_line 3 12 || return 1
    assert_each_chunk_once 4 1
}

@test "a worker killed mid-chunk with three workers: exactly its chunk is run again" {
    without_leak_tracer
    run_prog --kill w1/KILL@busy -v -j 3 -c 4 -d 200 -s 5 30
    assert_status 0
    assert_list "$(squares 30)"
    assert_death_line 4 30 || return 1
    assert_each_chunk_once 8 1 || return 1
    assert_pool_of 3
}

# ---- failures ------------------------------------------------------------

# expect_failure REGEX: status 1, nothing on stdout, exactly one line on
# stderr, which matches the extended REGEX.
expect_failure() {
    [ "$status" = 1 ] && [ ${#stderr_lines[@]} = 1 ] && [[ ${stderr_lines[0]} =~ $1 ]] &&
        [ -z "$output" ] && return 0
    fail "expected status 1, nothing on stdout and one line on stderr that matches" \
        "  /$1/" "got status $status, stdout: ${output:-(empty)}" "stderr:" "$(show_stderr)" \
        "$(reproduce)"
}

@test "a full disk is an error: status 1 and one line, shared: stdout: No space left on device" {
    run_prog --stdout /dev/full -j 2 8
    expect_failure '^shared: stdout: No space left on device$' || return 1
    assert_pool_of 2
    run_prog --stdout /dev/full -h
    expect_failure '^shared: stdout: No space left on device$'
}

@test "a closed stdout is an error, and the list goes down no pipe" {
    [ "${FORKLINGS_VALGRIND:-}" = 1 ] && skip "valgrind opens its log file on the closed descriptor 1"
    run_prog --close 1 -j 2 -c 1 8
    expect_failure '^shared: stdout: Bad file descriptor$'
}

@test "runs as usual with stdin or stderr closed" {
    local fd
    for fd in 0 2; do
        run_prog --close "$fd" -j 3 -c 2 20
        assert_status 0
        assert_list "$(squares 20)"
    done
}

@test "too few descriptors (ulimit -n 6): status 1, one line, the workers started are ended" {
    [ "${FORKLINGS_VALGRIND:-}" = 1 ] && skip "valgrind needs descriptors of its own"
    # 0, 1, 2 and a read end per worker started: the third pipe() fails.
    run_prog --nofile 6 -j 8 16
    expect_failure '^shared: pipe: Too many open files$' || return 1
    assert_forked_at_least 1
}

@test "fork() failing (ulimit -u): status 1, one line, the workers started are ended" {
    run_prog --fork-fails-after 2 -j 4 16
    expect_failure '^shared: fork: Resource temporarily unavailable$' || return 1
    assert_pool_of 2
}

# ---- the command line ------------------------------------------------------

@test "takes N after -- (options end there)" {
    run_prog -j 2 -- 3
    assert_status 0
    assert_output "[0, 1, 4]"
}

@test "-h prints usage on stdout and exits 0" {
    run_prog -h
    assert_status 0
    assert_match '^usage: shared ' "$output" "stdout"
    assert_stderr_empty
}

@test "rejects bad arguments with one line on stderr and status 2" {
    local args
    for args in "-j 0 5" "-j abc 5" "-j -3 5" "-j 99999 5" "-j" "-c 0 5" "-c x 5" \
        "-d -1 5" "-d 99999 5" "-s seed 5" "" "abc" "-- -1" "1x" "99999999999" \
        "5 6" "-x 5" "-l -j 1 5"; do
        # shellcheck disable=SC2086 # split args on purpose
        run_prog $args
        assert_usage_error
    done
}
