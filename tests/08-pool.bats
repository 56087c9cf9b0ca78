#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Lesson 08 pool: the capstone. The pool library (pool.h and the pool-*.c
# files) through its demo program `pool`, then its acceptance suite
# (prog-acceptance.c):
# CPython's own Pool tests and concurrent.futures' crash cases, one case per
# test, each under the guard with a deadline and a census of what is left.
# The starter fails: "reproduces the seed's functor: -F 2,3 1 2 3 4 5 prints [15, 24, 33, 42, 51]"

# shellcheck disable=SC2154 # status, output, g_* are set by lib/harness
load lib/harness

ACCEPTANCE_REL=$FORKLINGS_BUILD/$TREE/$LESSON/acceptance
ACCEPTANCE=$FORKLINGS_ROOT/$ACCEPTANCE_REL

# Build the demo (the harness does) and the acceptance runner.
setup_file() {
    forklings_build || return 1
    forklings_make "$ACCEPTANCE_REL" || return 1
}

# run_case [GUARD OPTIONS] [--hint TEXT] CASE: run one acceptance case
# under the guard (under valgrind too with FORKLINGS_VALGRIND=1), and fail
# with what the case said, and TEXT, unless it passed. Times are checked
# only when not slow_mode; under valgrind the cases that fork most run
# smaller (-s).
run_case() {
    local opts=() flags=() hint=""
    while [ $# -gt 1 ]; do
        case $1 in
        --tolerate | --cap | --deadline | --linger) opts+=("$1" "$2"); shift 2 ;;
        --hint) hint=$2; shift 2 ;;
        *) opts+=("$1"); shift ;;
        esac
    done
    slow_mode || flags+=(-t)
    [ "${FORKLINGS_VALGRIND:-}" != 1 ] || flags+=(-s)
    PROG=$ACCEPTANCE run_guarded "${opts[@]}" -- "$ACCEPTANCE" "${flags[@]}" "$1" || {
        [ -z "$stderr" ] || printf 'the case said:\n%s\n' "$stderr" >&2
        # The census speaks first; a crash of the parent is the real news.
        [ "$status" -le 128 ] || [ "$g_timeout" = 1 ] ||
            printf '%s\n' "note: the acceptance program itself was killed by SIG$(kill -l $((status - 128))):" \
                "      its workers were left behind, hence the message above." >&2
        [ -z "$hint" ] || printf 'in this case: %s\n' "$hint" >&2
        return 1
    }
    [ "$status" = 0 ] && [ "${lines[-1]:-}" = "ok $1" ] && return 0
    fail "acceptance case '$1' failed (status $status):" "$(show_stderr)" \
        ${hint:+"in this case: $hint"} "$(reproduce)"
}

# squares_line N: the list Python prints for p.map(sqr, range(N)), as a
# string (lib/harness's squares makes it a file, for the long lists).
squares_line() {
    local i list=""
    for ((i = 0; i < $1; i++)); do list+="${list:+, }$((i * i))"; done
    echo "[$list]"
}

# ---- the demo program ----------------------------------------------------

@test "reproduces the seed's functor: -F 2,3 1 2 3 4 5 prints [15, 24, 33, 42, 51]" {
    run_prog -F 2,3 1 2 3 4 5
    assert_status 0
    assert_output "[15, 24, 33, 42, 51]"
    assert_stderr_empty
}

@test "maps sqr over range(N) in input order (-n 10; -n 1000 with -c 7 on 3 workers)" {
    run_prog -n 10
    assert_status 0
    assert_output "$(squares_line 10)"
    run_prog -j 3 -c 7 -n 1000
    assert_status 0
    assert_output "$(squares_line 1000)"
}

@test "a map's list keeps the input order when a later chunk comes back first" {
    # Two chunks on two workers: items 0 to 9 (1 s: 0.1 s each) and item 10
    # (0.1 s). The second comes back 0.9 s before the first, however busy
    # the machine: each result is stored where its items belong, not in
    # the order the chunks arrive.
    run_prog -j 2 -c 10 -d 100 -n 11
    assert_status 0
    assert_output "$(squares_line 11)"
}

@test "-u prints each result exactly once, in any order" {
    local i want=$BATS_TEST_TMPDIR/squares.txt
    for ((i = 0; i < 200; i++)); do echo $((i * i)); done >"$want"
    run_prog -u -j 4 -n 200
    assert_status 0
    assert_lines_any_order "$want"
}

@test "-m 1 runs every task in a new worker process (-v counts them)" {
    run_prog -v -m 1 -j 2 -c 1 -n 12
    assert_status 0
    assert_output "$(squares_line 12)"
    assert_match ', 12 worker processes used,' "$stderr" "stderr"
    run_prog -v -j 2 -c 1 -n 12
    assert_match ', [12] worker processes used,' "$stderr" "stderr without -m"
}

# atexit_probe: build, once a suite, a library to preload into the program
# (LD_PRELOAD) that notices any process of it that leaves with exit(),
# and print its path. In the program itself (the executable named by
# $ATEXIT_PROBE_EXE) it registers an atexit() handler and logs
# "armed PID" to $ATEXIT_PROBE_LOG; a forked child inherits the handler,
# which runs there only if the child calls exit(), and then logs
# "exit() in PID". Any other process that loads it, it leaves alone.
atexit_probe() {
    local so=$BATS_FILE_TMPDIR/atexit-probe.so src=$BATS_FILE_TMPDIR/atexit-probe.c
    if [ ! -e "$so" ]; then
        cat >"$src" <<'C'
#define _DEFAULT_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pid_t armed_pid;

static void
log_line(const char *what)
{
    const char *path = getenv("ATEXIT_PROBE_LOG");
    char line[64];
    int fd, len = snprintf(line, sizeof line, "%s %ld\n", what, (long)getpid());

    if (path == NULL || (fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644)) == -1)
        return;
    if (write(fd, line, (size_t)len) != len) {
        /* a lost line shows as a missing "armed" */
    }
    close(fd);
}

static void
on_exit_call(void)
{
    if (getpid() != armed_pid)
        log_line("exit() in");
}

__attribute__((constructor)) static void
arm(void)
{
    const char *exe = getenv("ATEXIT_PROBE_EXE");
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);

    if (exe == NULL || n <= 0)
        return;
    self[n] = '\0';
    if (strcmp(self, exe) != 0)
        return;
    armed_pid = getpid();
    if (atexit(on_exit_call) == 0)
        log_line("armed");
}
C
        "${CC:-cc}" -std=c11 -Wall -Wextra -Werror -shared -fPIC -o "$so" "$src" >&2 || return 1
    fi
    echo "$so"
}

@test "workers end with _exit(): the program's atexit() handlers run in the parent alone" {
    [ "${FORKLINGS_VALGRIND:-}" != 1 ] ||
        skip "valgrind runs the program itself: the probe preloads into it instead"
    local probe log=$BATS_TEST_TMPDIR/atexit.log
    probe=$(atexit_probe) || fail "cannot build the atexit probe" || return 1
    # -m 2: workers are replaced during the run, the last ones leave at join.
    LD_PRELOAD=$probe ATEXIT_PROBE_EXE=$(realpath "$PROG") ATEXIT_PROBE_LOG=$log \
        run_prog -m 2 -j 2 -c 1 -n 8
    assert_status 0
    assert_output "$(squares_line 8)"
    grep -q '^armed ' "$log" 2>/dev/null ||
        fail "the atexit probe did not load into the program: nothing to judge" \
            "(LD_PRELOAD=$probe)" || return 1
    ! grep -q '^exit() in ' "$log" ||
        fail "$(grep -c '^exit() in ' "$log") worker(s) ran the program's atexit() handlers: they left with exit()." \
            "hint: a worker must end with _exit(), not exit(): exit() runs every atexit()" \
            "      handler of the program (and flushes its stdio buffers) in the worker," \
            "      as if the program itself were ending." "$(reproduce)"
}

@test "a failing task (-e 3) is named on stderr; no list; status 1" {
    run_prog -j 3 -c 1 -e 3 -n 10
    assert_status 1
    assert_output ""
    assert_match '^pool: item 3: task failed with code 1 \(worker [0-9]+\)$' "$stderr" "stderr"
}

@test "a task that kills its worker (-k 4) is named with the signal; status 1, no hang" {
    run_prog --deadline 5 -j 3 -c 1 -k 4 -n 10
    assert_status 1
    assert_output ""
    assert_match '^pool: item 4: worker [0-9]+ was killed by signal 9 ' "$stderr" "stderr"
    run_prog --deadline 5 -u -j 3 -c 1 -k 4 -n 10
    assert_status 1
    assert_line_count 9
}

@test "Ctrl-C (SIGINT to the group) cancels a long map: status 130, no worker left" {
    # The program prints nothing before its tasks of 60 s end, so Ctrl-C
    # comes when the guard sees the parent asleep in poll() and every worker
    # asleep in its task (their wchans): the map waits for tasks of 60 s.
    run_prog --deadline 5 --group --kill INT@busy -j 3 -d 60000 -n 6
    assert_status 130
    assert_match '^pool: interrupted' "$stderr" "stderr"
    # Measured from Ctrl-C, not from the start: right, a few ms (the
    # workers die of SIGTERM at once); wrong, the tasks' 60 s (the deadline
    # ends it first).
    slow_mode || [ $((g_elapsed_ms - g_kick_ms)) -lt 2500 ] ||
        fail "expected the program to end within 2.5 s of Ctrl-C, it took $((g_elapsed_ms - g_kick_ms)) ms" \
            "(Ctrl-C sent $g_kick_ms ms after the start, end at $g_elapsed_ms ms)" "$(reproduce)"
}

@test "with POOL_TRACE=FILE the parent records each chunk once, with the worker that ran it" {
    local t=$BATS_TEST_TMPDIR/run.trace
    POOL_TRACE=$t run_prog -j 3 -c 2 -m 2 -n 20
    assert_status 0
    assert_output "$(squares_line 20)"
    [ -s "$t" ] || fail "POOL_TRACE=$t was set, but the run wrote no trace" "$(reproduce)" || return 1
    # Every line is a task or a wait, with whole numbers and end >= start.
    local bad
    bad=$(awk '!(($1 == "task" && NF == 6 && $6 >= $5 && $6 > 0) ||
                 ($1 == "wait" && NF == 4 && $4 >= $3 && $4 > 0))' "$t")
    [ -z "$bad" ] || fail "lines of the trace that are neither task nor wait:" "$bad" || return 1
    # The chunks: 0-1, 2-3, ..., 18-19, each exactly once.
    local want got
    want=$(for ((i = 0; i < 20; i += 2)); do echo "$i 2"; done)
    got=$(awk '$1 == "task" { print $2, $3 }' "$t" | sort -n)
    [ "$got" = "$want" ] ||
        fail "expected the chunks 0 2, 2 2, ..., 18 2 once each (first count), the trace has:" \
            "$(head -20 <<<"$got")" || return 1
    # One parent waits; the workers are other processes, and -m 2 replaced
    # them: 10 chunks, at most 2 each, so at least 5 pids.
    local parents workers
    parents=$(awk '$1 == "wait" { print $2 }' "$t" | sort -u)
    workers=$(awk '$1 == "task" { print $4 }' "$t" | sort -u)
    [ "$(wc -l <<<"$parents")" = 1 ] || fail "wait lines from more than one pid:" "$parents" || return 1
    ! grep -qxF "$parents" <<<"$workers" ||
        fail "pid $parents both waited (the parent) and ran tasks" || return 1
    [ "$(wc -l <<<"$workers")" -ge 5 ] ||
        fail "expected at least 5 worker pids with -m 2 (10 chunks), the trace names:" "$workers" || return 1
    # A pool started afresh appends: the trace holds both runs.
    POOL_TRACE=$t run_prog -j 2 -n 4
    assert_status 0
    [ "$(awk '$1 == "task"' "$t" | wc -l)" -gt 10 ] ||
        fail "a second run with the same POOL_TRACE replaced the trace instead of appending" || return 1
}

@test "a POOL_TRACE file that cannot be opened fails the pool, saying so; no worker started" {
    POOL_TRACE=$BATS_TEST_TMPDIR/no/such/folder/run.trace run_prog -j 3 -n 5
    assert_status 1
    assert_no_fork "POOL_TRACE cannot be opened" || return 1
    assert_output ""
    assert_match '^pool: POOL_TRACE: open .*/no/such/folder/run\.trace: No such file or directory$' \
        "$stderr" "stderr"
}

@test "workers hold no descriptor of the POOL_TRACE file, replacements included" {
    POOL_TRACE=$BATS_TEST_TMPDIR/run.trace run_case \
        --hint "close_parent_ends() closes each pool's trace_fd in a new worker" fd-isolation
    [ -s "$BATS_TEST_TMPDIR/run.trace" ] ||
        fail "the acceptance case ran with POOL_TRACE set, but no trace was written" || return 1
}

@test "with nothing to map (-n 0) prints [] and exits 0" {
    run_prog -n 0
    assert_status 0
    assert_output "[]"
}

@test "-h prints usage on stdout and exits 0" {
    run_prog -h
    assert_status 0
    assert_match '^usage: pool' "$output" "stdout"
    assert_stderr_empty
}

@test "rejects bad arguments with one line on stderr and status 2" {
    local args all=("-j 0" "-j abc" "-j -3" "-j 99999999" "-j" "-c 0" "-m -1"
        "-F 2" "-F 2,x" "-n -1" "-n 1x" "-x" "" "-n 3 4" "1 x")
    # Under valgrind (3 s a run) a few of them: the parsing is the same.
    [ "${FORKLINGS_VALGRIND:-}" != 1 ] || all=("-j 0" "-F 2,x" "-n 3 4")
    for args in "${all[@]}"; do
        # shellcheck disable=SC2086 # split args on purpose
        run_prog $args
        assert_usage_error
    done
}

# ---- the acceptance suite: CPython's Pool tests --------------------------

@test "map equals a plain loop, also with chunksize 20 and with one worker" {
    run_case map-equals-loop
}

@test "map equals a plain loop for explicit chunksizes 1 to 1000" {
    run_case map-chunksizes
}

@test "starmap over structs of arguments equals a plain loop, also with chunksize 20" {
    run_case starmap-equals-loop
}

@test "a functor's bound arguments reach the workers by value" {
    run_case functor-by-value
}

@test "empty input returns at once from map and imap_unordered" {
    run_case empty-input
}

@test "imap_unordered hands over each result exactly once" {
    run_case --hint "each result reaches the caller through deliver_unordered() (TODO 5)." \
        unordered-once
}

@test "imap_unordered hands over only the items that succeeded, and names the failed one" {
    run_case --hint "deliver_unordered() (TODO 5) skips an item when h->failed > 0 and its code is not 0." \
        unordered-errors
}

@test "imap_unordered with one worker keeps the input order" {
    run_case --hint "each result reaches the caller through deliver_unordered() (TODO 5)." \
        unordered-one-worker
}

@test "imap_unordered stops when the callback says so, and the pool stays usable" {
    run_case --hint "deliver_unordered() (TODO 5) sets job->stopped when each() returns non-zero, and hands over nothing more." \
        unordered-stop
}

@test "worker count and other arguments are validated" {
    run_case worker-count-validation
}

@test "terminate returns promptly while long tasks run, even if they ignore SIGTERM" {
    run_case --hint "the map stops only when the callback says so, through deliver_unordered() (TODO 5); until then the tasks of 60 s run on." \
        terminate-prompt
}

@test "using a pool after close or terminate is an error, as is join before close" {
    run_case use-after-close
}

@test "an error in a task reaches the caller naming the item, and the other items finish" {
    run_case task-error
}

@test "worker recycling changes the worker pids and still returns every result" {
    run_case --hint "recycle_if_spent() (TODO 6) replaces a worker once w->tasks reaches cfg.maxtasks." \
        worker-recycling
}

@test "recycling after every task, then close and join at once, does not hang" {
    run_case recycling-early-close
}

@test "the initializer runs once in each worker, replacements included" {
    run_case initializer-once
}

@test "an initializer that fails or crashes makes create fail, leaving no process" {
    run_case initializer-fails
}

@test "a pool of 200 workers maps 1000 items correctly" {
    [ "${FORKLINGS_VALGRIND:-}" != 1 ] ||
        skip "201 processes under valgrind take minutes; the 20-worker case runs instead"
    run_case --cap 256 --deadline 60 large-pool-200
}

@test "a pool of 20 workers maps 1000 items correctly" {
    run_case --deadline 30 large-pool-20
}

# ---- the acceptance suite: workers that die ------------------------------

@test "a worker killed during a task fails its chunk, is replaced, and nothing hangs" {
    run_case --hint "bury_worker() (TODO 7) fails the dead worker's chunk with lose_chunk() and spawns a new worker." \
        crash-during-task
}

@test "a worker that calls _exit() during a task fails its item with that status" {
    run_case --hint "bury_worker() (TODO 7) fails the dead worker's chunk with lose_chunk() and spawns a new worker." \
        exit-during-task
}

@test "a worker dead before it receives its task fails that task, no hang" {
    run_case --hint "a task written to a dead worker fails with EPIPE, and send_chunks() (TODO 2) calls bury_worker() (TODO 7)." \
        crash-before-receipt
}

@test "a worker killed while sending a result bigger than a pipe fails that item, no hang" {
    run_case --hint "a record cut short means the worker died while sending it: receive() (TODO 4) calls bury_worker() (TODO 7)." \
        crash-while-sending
}

@test "a worker that closes its result pipe and runs on is killed, not waited for" {
    run_case --hint "the worker closed its result pipe but sleeps on: bury_worker() (TODO 7) must kill(pid, SIGKILL) before reap_worker() waits for it." \
        mute-worker
}

@test "output buffered before the pool forks comes out once, recycling included" {
    run_case no-repeated-output
    assert_output "printed before the pool
ok no-repeated-output"
}

@test "join reports a worker that died while idle" {
    run_case join-reports-death
}

@test "workers leave when their parent is killed with SIGKILL" {
    # The dead parent's workers are adopted by the guard: not zombies of ours.
    # The case ends at the end-of-file of the workers' lifeline, which comes
    # as the last worker closes its descriptors on the way out, a moment
    # before it is gone: the guard gives them a second to finish leaving
    # (they need microseconds; a worker that never sees its parent's death
    # never leaves).
    run_case --tolerate unreaped --linger 1 parent-killed
}

# ---- the acceptance suite: chunks queued behind the running one ----------

@test "a worker killed with 4 chunks queued fails its running chunk alone; the queued ones run once elsewhere" {
    run_case --hint "lose_chunk() fails the oldest chunk a dead worker held and sends the others again (p->redo)." \
        crash-with-queued
}

@test "a stop from each() with chunks queued hands over nothing more, and no later call sees them" {
    run_case --hint "abandon_in_flight() marks every chunk a worker holds, queued ones too; deliver_unordered() (TODO 5) stops at once." \
        stop-with-queued
}

@test "maxtasks with chunks queued: no worker is sent more than its tasks, each is replaced after exactly that many" {
    run_case --hint "has_room() sends a worker no more chunks than cfg.maxtasks; recycle_if_spent() (TODO 6) replaces it once w->tasks reaches it." \
        recycling-with-queued
}

# ---- the acceptance suite: timeouts (pool_config.timeout_ms) -------------

@test "a chunk that never ends fails with POOL_ETIMEOUT; its worker is replaced, its queued chunks run once elsewhere" {
    run_case --deadline 30 --hint "expire_late() (TODO 8) kills and reaps the worker of a late chunk, lose_late_chunk() fails that chunk and sends the queued ones again, and a new worker takes the slot; wait_results() calls it after receiving, with poll()'s timeout from watch_set()." \
        timeout-late-chunk
}

@test "a chunk's clock starts when it begins to run: chunks queued behind others do not time out" {
    run_case --deadline 30 --hint "the clock of a worker's next chunk starts when receive() has taken the result before it (w->began_ns), and when send_chunks() sends a chunk to an idle worker." \
        timeout-clock-per-chunk
}

# ---- the acceptance suite: the library in a program ----------------------

@test "records bigger than a pipe, both ways, do not deadlock" {
    run_case --deadline 30 big-records
}

@test "no worker holds another worker's descriptors, nor another pool's" {
    run_case fd-isolation
}

@test "two pools at once: closing one does not wait for the other" {
    run_case two-pools
}

@test "leaving a POOL_AUTO scope terminates and reaps the workers" {
    run_case scope-exit
}

@test "pool_destroy in a forked child leaves the parent's workers alone" {
    run_case destroy-in-child
}

@test "a readable cancel_fd (a signal handler's self-pipe) cancels a long map at once" {
    run_case cancel-long-map
}

@test "workers ignore Ctrl-C (SIGINT to the whole group): the parent decides" {
    run_case group-sigint
}

# ---- the fault matrix: an adversarial user ------------------------------

# fd_probe: build, once a suite, a library to preload into the program
# that logs, as each of its processes ends, "exit PID: FD..." (the parent,
# at exit()) or "_exit PID: FD..." (a worker, at _exit()), the descriptors
# above 2 it still holds, and print its path. Only in the executable named
# by $FD_PROBE_EXE; the log is $FD_PROBE_LOG.
fd_probe() {
    local so=$BATS_FILE_TMPDIR/fd-probe.so src=$BATS_FILE_TMPDIR/fd-probe.c
    if [ ! -e "$so" ]; then
        cat >"$src" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int armed;

static void
log_fds(const char *how)
{
    const char *path = getenv("FD_PROBE_LOG");
    char line[512];
    int fd, len = snprintf(line, sizeof line, "%s %ld:", how, (long)getpid());

    if (!armed || path == NULL)
        return;
    for (fd = 3; fd < 1024 && len < (int)sizeof line - 16; fd++)
        if (fcntl(fd, F_GETFD) != -1)
            len += snprintf(line + len, sizeof line - (size_t)len, " %d", fd);
    line[len++] = '\n';
    if ((fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644)) == -1)
        return;
    if (write(fd, line, (size_t)len) != len) {
        /* a lost line shows as a missing process */
    }
    close(fd);
}

void
_exit(int status)
{
    void (*real)(int) = (void (*)(int))dlsym(RTLD_NEXT, "_exit");

    log_fds("_exit");
    real(status);
    for (;;)
        continue;
}

__attribute__((destructor)) static void
at_exit(void)
{
    log_fds("exit");
}

__attribute__((constructor)) static void
arm(void)
{
    const char *exe = getenv("FD_PROBE_EXE");
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);

    if (exe == NULL || n <= 0)
        return;
    self[n] = '\0';
    armed = strcmp(self, exe) == 0;
}
C
        "${CC:-cc}" -std=c11 -Wall -Wextra -Werror -shared -fPIC -o "$so" "$src" -ldl >&2 || return 1
    fi
    echo "$so"
}

@test "the Ctrl-C self-pipe is the parent's: closed at exit, never held by a worker" {
    [ "${FORKLINGS_VALGRIND:-}" != 1 ] ||
        skip "valgrind runs the program itself: the probe would watch valgrind's descriptors"
    local probe log=$BATS_TEST_TMPDIR/fds.log
    probe=$(fd_probe) || fail "cannot build the descriptor probe" || return 1
    LD_PRELOAD=$probe FD_PROBE_EXE=$(realpath "$PROG") FD_PROBE_LOG=$log \
        run_prog -m 2 -j 2 -c 1 -n 6
    assert_status 0
    assert_output "$(squares_line 6)"
    grep -q '^exit ' "$log" 2>/dev/null ||
        fail "the descriptor probe did not load into the program: nothing to judge" \
            "(LD_PRELOAD=$probe)" || return 1
    # The parent: nothing above 2 at exit. A worker: its task pipe's read
    # end and its result pipe's write end, nothing else.
    local bad
    bad=$(awk '($1 == "exit" && NF != 2) || ($1 == "_exit" && NF != 4)' "$log")
    local workers
    workers=$(grep -c '^_exit ' "$log")
    [ -z "$bad" ] && [ "$workers" -ge 2 ] &&
        { ! counts_are_exact || [ "$workers" = "$g_forks" ]; } && return 0
    fail "expected the parent to end with no descriptor above 2 open, and each of the" \
        "$g_forks workers with its own two pipe ends only; the descriptors still open:" \
        "$(cat "$log")" \
        "hint: main.c's self-pipe of Ctrl-C (interrupt_pipe) is the parent's: close it" \
        "      before the end (SIGINT's action restored first), and in each worker" \
        "      (the initializer runs there)." "$(reproduce)"
}

@test "Ctrl-C cancels the map with stdin closed (<&-): status 130, no worker left" {
    # A closed stdin makes descriptor 0 the lowest free one: a pipe made
    # then is on 0, which cancel_fd takes for "none". Tasks of 3 s; Ctrl-C
    # when the parent waits in poll() and both workers sleep in a task.
    run_prog --close 0 --deadline 8 --group --kill INT@busy -j 2 -d 3000 -n 2
    if [ "$status" = 0 ]; then
        fail "Ctrl-C was ignored: the map ran to its end (status 0) with stdin closed." \
            "hint: open /dev/null onto each closed standard descriptor first thing" \
            "      (open_standard_fds()): then no pipe can take the number 0." "$(reproduce)"
        return 1
    fi
    assert_status 130
    assert_output ""
    assert_match '^pool: interrupted' "$stderr" "stderr"
}

@test "stdout closed (>&-): one line 'pool: stdout: Bad file descriptor', status 1" {
    [ "${FORKLINGS_VALGRIND:-}" != 1 ] ||
        skip "valgrind opens its log file on the closed descriptor 1: it is not closed there"
    run_prog --close 1 -j 2 -n 5
    assert_status 1
    [ "$stderr" = "pool: stdout: Bad file descriptor" ] && return 0
    fail "expected the one line 'pool: stdout: Bad file descriptor' on stderr, got:" \
        "$(show_stderr)" \
        "hint: with stdout closed, the first pipe() takes descriptor 1. Open /dev/null" \
        "      read-only onto each closed standard descriptor before making any pipe:" \
        "      the write to stdout then fails, and is reported." "$(reproduce)"
}

@test "stderr closed (2>&-): the map still runs, status 0; a failure still gives status 1" {
    [ "${FORKLINGS_VALGRIND:-}" != 1 ] ||
        skip "valgrind opens its log file on the closed descriptor 2: it is not closed there"
    run_prog --close 2 -j 2 -n 5
    if [ "$status" != 0 ]; then
        fail "expected status 0 and the list with stderr closed, got status $status" \
            "and stdout '$output'." \
            "hint: with stderr closed, the self-pipe takes descriptor 2: open /dev/null" \
            "      onto each closed standard descriptor before making any pipe." "$(reproduce)"
        return 1
    fi
    assert_output "$(squares_line 5)"
    run_prog --close 2 -j 2 -c 1 -e 3 -n 5
    assert_status 1
    assert_output ""
}

@test "a full disk (/dev/full) is an error, with -u too: one line naming stdout, status 1" {
    run_prog --stdout /dev/full -j 2 -n 10
    assert_status 1
    [ "$stderr" = "pool: stdout: No space left on device" ] ||
        fail "expected the one line 'pool: stdout: No space left on device', got:" \
            "$(show_stderr)" "$(reproduce)" || return 1
    run_prog --stdout /dev/full -u -j 2 -c 1 -n 10
    [ "$status" = 1 ] && [ "$stderr" = "pool: stdout: No space left on device" ] && return 0
    fail "expected -u to a full disk to exit 1 with the one line" \
        "'pool: stdout: No space left on device'; got status $status and stderr:" \
        "$(show_stderr)" \
        "hint: print_one() stops the map when fflush() fails; only EPIPE (the reader" \
        "      left) is quiet: any other errno is a lost result, to report." "$(reproduce)"
}

@test "when the parent is killed mid-task (SIGKILL), every worker dies within a second" {
    # Tasks of 5 s (longer when the programs run slowed down, so that a
    # task always outlasts the guard's second, scaled): only the parent's
    # death can end them in time. The workers it ends are zombies of the
    # dead parent: tolerated, the guard reaps them.
    local ms=$((5000 * ${FORKLINGS_SLOW%%.*}))
    [ "$ms" -le 100000 ] || ms=100000
    if ! run_prog --deadline 20 --kill KILL@busy --linger 1 --tolerate unreaped \
        -j 3 -c 1 -d "$ms" -n 6; then
        [ "$g_survivors" -gt 0 ] 2>/dev/null &&
            fail "hint: a worker sleeps through its parent's death until its task ends;" \
                "      on Linux, die_with_parent() right after fork() asks the kernel" \
                "      (prctl(PR_SET_PDEATHSIG, SIGKILL)) to end it with its parent."
        return 1
    fi
    assert_status 137
}

@test "a worker killed from outside mid-task fails its item alone: one line, status 1" {
    # Worker 0 holds item 0 (slot 0 is fed first); SIGKILL when every
    # worker sleeps in its task.
    run_prog --deadline 8 --kill w0/KILL@busy -j 2 -c 1 -d 1000 -n 4
    assert_status 1
    assert_output ""
    [ ${#stderr_lines[@]} = 1 ] &&
        [[ ${stderr_lines[0]} =~ ^pool:\ item\ 0:\ worker\ [0-9]+\ was\ killed\ by\ signal\ 9\  ]] &&
        return 0
    fail "expected one line 'pool: item 0: worker N was killed by signal 9 (...)', got:" \
        "$(show_stderr)" "$(reproduce)"
}

@test "Ctrl-C with a stopped worker (SIGSTOP): status 130 at once, the worker continued and ended" {
    # A SIGTERM to a stopped process waits until it is continued: the pool
    # must send SIGCONT too, or wait out the grace period (1 s) for SIGKILL.
    # Worker 0 is stopped once every worker sleeps in its task; Ctrl-C
    # comes once it is stopped (state T), never before.
    # Ctrl-C is the first --kill: g_kick_ms is its time.
    run_prog --deadline 8 --kill INT@stopped --kill w0/STOP@busy -u -j 2 -c 1 -d 1000 -n 6
    assert_status 130
    assert_match '^pool: interrupted' "$stderr" "stderr"
    # From Ctrl-C: right, a few ms; wrong, the grace period (1 s).
    slow_mode || [ $((g_elapsed_ms - g_kick_ms)) -lt 700 ] ||
        fail "expected the program to end within 0.7 s of Ctrl-C, it took $((g_elapsed_ms - g_kick_ms)) ms." \
            "hint: pool_terminate() sends SIGTERM; a stopped worker keeps it pending until" \
            "      SIGCONT, so send SIGCONT too: else it waits out the grace period and" \
            "      SIGKILL." "$(reproduce)"
}

@test "-u | head -1 stops quietly, status 0; it never waits for an abandoned chunk" {
    run_prog --head 1 --deadline 8 -u -j 2 -c 1 -n 1000
    assert_status 0
    assert_line_count 1
    assert_stderr_empty
    # Worker 0 is stopped (SIGSTOP) holding item 0; worker 1 prints item 1
    # (head takes it and leaves), then item 2 fails to print: the map
    # stops with item 0 in flight. Waiting for it would wait for ever.
    if ! run_prog --head 1 --deadline 10 --kill w0/STOP@busy -u -j 2 -c 1 -d 1500 -n 4; then
        [ "$g_timeout" = 1 ] &&
            fail "hint: once the reader has gone, nobody wants the chunks in flight: do not" \
                "      close and join the pool (join waits for them), destroy it (which" \
                "      terminates the workers)."
        return 1
    fi
    assert_status 0
    assert_output "1"
    assert_stderr_empty
}

@test "too few descriptors (ulimit -n): one line, status 1, no worker left" {
    [ "${FORKLINGS_VALGRIND:-}" != 1 ] ||
        skip "valgrind needs descriptors of its own: a low ulimit -n fails valgrind, not the pool"
    run_prog --nofile 12 -j 8 -n 20
    assert_status 1
    assert_output ""
    [ "$stderr" = "pool: pipe: Too many open files" ] && return 0
    fail "expected the one line 'pool: pipe: Too many open files', got:" "$(show_stderr)" \
        "$(reproduce)"
}

@test "fork fails after two workers (ulimit -u): one line, status 1, those two stopped" {
    run_prog --fork-fails-after 2 -j 8 -n 20
    assert_status 1
    assert_output ""
    [ "$stderr" = "pool: fork: Resource temporarily unavailable" ] ||
        fail "expected the one line 'pool: fork: Resource temporarily unavailable', got:" \
            "$(show_stderr)" "$(reproduce)" || return 1
    assert_forked_at_least 2
}

@test "a handler the parent set (SIGWINCH: a terminal resize) never runs in a worker" {
    run_case --hint "worker_setup() resets every signal the parent catches with a handler, not a list" \
        worker-signals
}

@test "the acceptance program: -h prints usage on stdout; no case is one line that names it, status 2" {
    PROG=$ACCEPTANCE run_guarded -- "$ACCEPTANCE" -h
    assert_status 0
    assert_match '^usage: acceptance ' "$output" "stdout"
    assert_stderr_empty
    local args
    for args in "" "-x" "one two"; do
        # shellcheck disable=SC2086 # split args on purpose
        PROG=$ACCEPTANCE run_guarded -- "$ACCEPTANCE" $args
        assert_status 2
        assert_output ""
        [ ${#stderr_lines[@]} = 1 ] && [[ ${stderr_lines[0]} == "acceptance: "* ]] ||
            fail "expected one line on stderr that starts with 'acceptance: ', got:" \
                "$(show_stderr)" "$(reproduce)" || return 1
    done
}
