# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# harness.bash: what every lesson suite loads (`load lib/harness`).
#
# It finds the lesson's program for the tree under test (TREE=lessons, the
# learner's own work, or TREE=solutions), builds it with -Werror, and runs it
# under tests/lib/guard: own process group, a deadline, a process cap, and a
# census of zombies and survivors afterwards. run_prog fails the test at once,
# with a hint a student can act on, when the program hung, forked without end,
# left a child unreaped or a process running. The assert_* helpers check
# properties of the output, never an interleaving.
#
# Environment:
#   TREE             lessons (default) or solutions
#   FORKLINGS_SANITIZE=1  build with AddressSanitizer and UBSan (SANITIZE=1)
#   FORKLINGS_BUILD  where the programs are built (build; build/sanitize)
#   FORKLINGS_SLOW   multiply every deadline by this (sanitizers, valgrind)
#   FORKLINGS_VALGRIND=1  run every program under valgrind, every process
#                    checked for memory errors and definite leaks
#   FORKLINGS_FAIL_FAST=1  skip every test after the first that failed
#   FORKLINGS_SHORTIO=1  preload tests/lib/shortio.c into the lesson's
#                    program: short reads and writes where POSIX allows
#                    them, and a signal every few ms that interrupts slow
#                    calls (EINTR)
#
# A suite that needs its own per-test set-up or clean-up defines
# lesson_setup or lesson_teardown (setup and teardown are the harness's).

bats_require_minimum_version 1.5.0

FORKLINGS_ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
TREE=${TREE:-lessons}
FORKLINGS_SANITIZE=${FORKLINGS_SANITIZE:-}
if [ "$FORKLINGS_SANITIZE" = 1 ]; then
    FORKLINGS_BUILD=${FORKLINGS_BUILD:-build/sanitize}
else
    FORKLINGS_BUILD=${FORKLINGS_BUILD:-build}
fi
FORKLINGS_SLOW=${FORKLINGS_SLOW:-1}
LESSON=$(basename "$BATS_TEST_FILENAME" .bats)   # e.g. 02-hello-pool
LESSON_NN=${LESSON%%-*}                          # 02
SLUG=${LESSON#*-}                                # hello-pool
PROG_REL=$FORKLINGS_BUILD/$TREE/$LESSON/$SLUG
PROG=$FORKLINGS_ROOT/$PROG_REL
GUARD=$FORKLINGS_ROOT/build/tests/guard
FORKWATCH=$FORKLINGS_ROOT/build/tests/forkwatch.so  # counts forks exactly
DEADLINE=${DEADLINE:-10}    # seconds a program may run, before FORKLINGS_SLOW
PROC_CAP=${PROC_CAP:-64}    # processes a program may hold at once

# What the guard reports about the last run (see run_guarded); the suites
# read them.
# shellcheck disable=SC2034
g_status="" g_signal="" g_timeout="" g_forkcap="" g_cap="" g_maxprocs="" \
    g_exact="" g_inexact="" g_forks="" g_seen="" g_kicks="" g_kick_ms="" g_pid="" \
    g_unreaped="" g_survivors="" g_survivor_pids="" g_stuck="" \
    g_elapsed_ms="" g_lines="" g_cmd="" g_redirect="" g_env="" g_fds="" g_limit="" g_forkfail=""

# The variables a lesson's program reads: a reproduce line sets the ones a
# test set for its run.
PROGRAM_VARS="POOL_TRACE FORKLINGS_FD_REPORT"

case $TREE in
lessons | solutions) ;;
*) echo "TREE must be lessons or solutions, not '$TREE'" >&2; exit 1 ;;
esac

# Every test: with FORKLINGS_FAIL_FAST=1 (make check does it), a test after
# a failed one is skipped, so that a check stops at its first failure, as
# rustlings does; then the suite's own lesson_setup, if it has one.
setup() {
    if [ "${FORKLINGS_FAIL_FAST:-}" = 1 ] && [ -e "$BATS_FILE_TMPDIR/.failed" ]; then
        skip "not run: an earlier test failed"
    fi
    if declare -F lesson_setup >/dev/null; then lesson_setup; fi
}

# After every test: remember a failure (for FORKLINGS_FAIL_FAST), then the
# suite's own lesson_teardown, if it has one.
teardown() {
    if [ -z "${BATS_TEST_COMPLETED:-}" ] && [ -z "${BATS_TEST_SKIPPED:-}" ]; then
        : >"$BATS_FILE_TMPDIR/.failed"
    fi
    if declare -F lesson_teardown >/dev/null; then lesson_teardown; fi
}

# Build the lesson's program and the guard, once per file. A build failure
# shows the compiler's messages and fails every test of the file.
setup_file() {
    forklings_build
}

forklings_build() {
    local extra=()
    rm -rf "${FORKLINGS_ROOT:?}/build/check/$LESSON_NN"   # the last check's files
    [ "${FORKLINGS_SHORTIO:-}" != 1 ] || extra=(build/tests/shortio.so)
    forklings_make "$PROG_REL" build/tests/guard "${extra[@]}" || return 1
}

# forklings_make TARGET...: build TARGETs with warnings as errors, with the
# sanitizers when FORKLINGS_SANITIZE=1 (and then check that they are really
# in: a sanitizer run of a plain build would prove nothing). On failure the
# compiler's messages go to the test output and the function fails.
forklings_make() {
    local log=$BATS_FILE_TMPDIR/build.log target
    if ! make --no-print-directory -s -C "$FORKLINGS_ROOT" WERROR=1 \
        SANITIZE="$FORKLINGS_SANITIZE" BUILD="$FORKLINGS_BUILD" "$@" >"$log" 2>&1; then
        {
            echo "# $TREE/$LESSON does not compile (warnings count as errors):"
            sed 's/^/#   /' "$log"
        } >&3
        return 1
    fi
    if [ "$FORKLINGS_SANITIZE" = 1 ]; then
        for target in "$@"; do
            [[ $target == build/tests/* ]] && continue
            if ! grep -qa __asan_init "$FORKLINGS_ROOT/$target"; then
                echo "# $target was not built with AddressSanitizer" >&3
                return 1
            fi
        done
    fi
}

# without_leak_tracer: in a sanitizer build, a process that calls exit()
# runs LeakSanitizer's check, which starts a tracer process of its own (with
# clone(), so forkwatch does not count it as the program's). When the
# process is killed during the check, the tracer is left over as an orphan
# the program never forked, and the census sees a survivor. A test that
# kills workers while exit() runs calls this first: it turns the leak check
# off for that test (each bats test is its own process). The valgrind stage
# of `make test` still checks every process for leaks.
without_leak_tracer() {
    [ "$FORKLINGS_SANITIZE" != 1 ] || export ASAN_OPTIONS=detect_leaks=0
}

# copy_worktree DIR [EXCLUDE]: copy the project as it is now, tracked and
# new files but nothing git ignores (build/), into DIR, leaving out the
# paths that match the extended regular expression EXCLUDE. For suites that
# try the learner's commands on a copy of their own.
copy_worktree() {
    local dir=$1 exclude=${2:-^$}
    mkdir -p "$dir"
    (cd "$FORKLINGS_ROOT" && git ls-files -co --exclude-standard |
        grep -vE "$exclude" | tr '\n' '\0' | xargs -0 tar -cf - --) |
        tar -xf - -C "$dir"
}

# Multiply a deadline in seconds by FORKLINGS_SLOW.
scaled() {
    awk -v s="$1" -v f="$FORKLINGS_SLOW" 'BEGIN { print s * f }'
}

# True when programs run slowed down (sanitizers, valgrind): tests that
# measure time skip their timing assertion then, and only then.
slow_mode() {
    [ "$FORKLINGS_SLOW" != 1 ]
}

# sweep VALUE...: the values for a test's loop over cases that run the same
# code with other numbers (worker counts, chunk sizes, seeds), one a line.
# All of them, except under valgrind, which takes most of a second to start
# each program: there the first and the last, and the other runs of
# `make test` (plain three times, ASan, injection, load) take every value.
# Not for loops over different paths (bad arguments), which run whole.
sweep() {
    if [ "${FORKLINGS_VALGRIND:-}" = 1 ] && [ $# -gt 2 ]; then
        printf '%s\n' "$1" "${!#}"
    else
        printf '%s\n' "$@"
    fi
}

# run_guarded [OPTIONS] -- COMMAND [ARG...]
# Runs COMMAND under the guard. Sets status, output (stdout), lines,
# stderr, stderr_lines, and g_timeout, g_forkcap, g_maxprocs, g_unreaped,
# g_survivors, g_survivor_pids, g_stuck, g_elapsed_ms, g_signal, g_lines.
# Options:
#   --deadline SECS   kill the group after SECS (default $DEADLINE), scaled
#   --cap N           most processes at once (default $PROC_CAP)
#   --head N          read N lines of stdout, then close it, as `| head -N`
#   --kill SIG@WHEN   send SIG at WHEN: seconds (0.5), stdout lines (L3),
#                     poll: once the program's first process sleeps in
#                     poll() or select() (the moment a stop must wake it),
#                     or busy: once, besides, every worker sleeps in a task;
#                     stopped: once a worker is stopped (state T: its
#                     SIGSTOP has taken effect); wN/SIG@busy or
#                     wN/SIG@stopped sends SIG to worker N alone (from 0,
#                     in the order of their forks)
#   --group           --kill signals go to the whole process group
#   --linger SECS     give left processes SECS to leave before the census
#   --stdin FILE      stdin (default /dev/null)
#   --stdout-file     stdout is a file, not a pipe
#   --stdout PATH     stdout is PATH itself (say /dev/full: a full disk);
#                     output is then empty
#   --close FD        FD (0, 1 or 2) is closed in the program, as `>&-`
#   --nofile N        at most N open descriptors, as `ulimit -n N`
#   --fork-fails-after N  fork() fails with EAGAIN once N forks succeeded
#                     (in every process of the program), as a low
#                     `ulimit -u` makes it, also for root
#   --tolerate WHAT   do not fail on WHAT: survivors, unreaped, unsent (a
#                     --kill that found the program ended: the test accepts
#                     a run over before its signal)
# Then fails the test, with a hint, when the program hung, hit the process
# cap, left zombies or left processes running.
run_guarded() {
    local opts=() tolerate="" dir=$BATS_TEST_TMPDIR stdout_path
    DEADLINE_USED=$DEADLINE
    g_redirect="| cat"
    g_fds="" g_limit="" g_forkfail=""
    stdout_path=$dir/stdout
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        case $1 in
        --deadline) DEADLINE_USED=$2; shift 2 ;;
        --cap) opts+=(-p "$2"); shift 2 ;;
        --head) opts+=(-H "$2"); g_redirect="| head -$2"; shift 2 ;;
        --kill) opts+=(-k "$2"); shift 2 ;;
        --group) opts+=(-g); shift ;;
        --linger) opts+=(-w "$(scaled "$2")"); shift 2 ;;
        --stdin) opts+=(-i "$2"); shift 2 ;;
        --stdout-file) opts+=(-f); g_redirect="> out.txt; cat out.txt"; shift ;;
        --stdout) stdout_path=$2; opts+=(-f); g_redirect=">$2"; shift 2 ;;
        --close) opts+=(-c "$2"); g_fds+=" $2>&-"; shift 2 ;;
        --nofile) opts+=(-n "$2"); g_limit="ulimit -n $2; "; shift 2 ;;
        --fork-fails-after) opts+=(-F "$2"); g_forkfail=$2; shift 2 ;;
        --tolerate) tolerate="$tolerate $2"; shift 2 ;;
        *) echo "run_guarded: unknown option $1" >&2; return 1 ;;
        esac
    done
    [ "${1:-}" = -- ] && shift
    # The command as the shell must read it again: each word quoted.
    g_cmd=$(printf '%q ' "$@")
    g_cmd=${g_cmd% }
    g_env=""
    local var
    for var in $PROGRAM_VARS; do
        [ -z "${!var+set}" ] || g_env+="$var=$(printf '%q' "${!var}") "
    done
    local cmd=("$@")
    if [ "${FORKLINGS_VALGRIND:-}" = 1 ] && [ "$1" = "$PROG" ]; then
        rm -f "$dir"/vg.*.log
        cmd=(valgrind -q --leak-check=full --show-leak-kinds=definite
            --errors-for-leak-kinds=definite --child-silent-after-fork=no
            "--log-file=$dir/vg.%p.log" "${cmd[@]}")
    fi
    if [ "${FORKLINGS_SHORTIO:-}" = 1 ] && [[ $1 == "$FORKLINGS_ROOT/$FORKLINGS_BUILD/$TREE/$LESSON/"* ]]; then
        opts+=(-E FORKLINGS_SHORTIO=1 -E "LD_PRELOAD=$FORKLINGS_ROOT/build/tests/shortio.so")
    fi
    status=0
    : >"$dir/stdout"                # no stale text from an earlier run, even
    : >"$dir/stderr"                # if the program dies before they open
    "$GUARD" -t "$(scaled "$DEADLINE_USED")" -p "$PROC_CAP" -P "$FORKWATCH" "${opts[@]}" \
        -o "$stdout_path" -e "$dir/stderr" -r "$dir/report" \
        -- "${cmd[@]}" 3>&- || status=$?
    output=$(cat "$dir/stdout")
    stderr=$(cat "$dir/stderr")
    lines=()
    stderr_lines=()
    [ -z "$output" ] || mapfile -t lines <"$dir/stdout"
    [ -z "$stderr" ] || mapfile -t stderr_lines <"$dir/stderr"
    local key value
    while IFS='=' read -r key value; do
        printf -v "g_$key" '%s' "$value"
    done <"$dir/report"
    [ "$g_status" = "$status" ] || fail "guard: cannot run ${cmd[0]}: $stderr" || return 1
    check_guard_report "$tolerate" || return 1
    if [ "${FORKLINGS_VALGRIND:-}" = 1 ]; then
        check_valgrind_logs "$dir" || return 1
    fi
}

# run_prog [OPTIONS] [--] [ARG...]: run_guarded for the lesson's program.
# The options are run_guarded's (all long); the rest goes to the program.
run_prog() {
    local opts=()
    while [ $# -gt 0 ]; do
        case $1 in
        --group | --stdout-file) opts+=("$1"); shift ;;
        --deadline | --cap | --head | --kill | --linger | --stdin | --tolerate | \
            --stdout | --close | --nofile | --fork-fails-after)
            opts+=("$1" "$2"); shift 2 ;;
        --) shift; break ;;
        *) break ;;
        esac
    done
    run_guarded "${opts[@]}" -- "$PROG" "$@"
}

# keep_inputs: copy the test's own files (inputs, a trace, a report) from
# its temporary folder, which bats deletes, to build/check/NN/TEST, kept
# until the lesson's next check; print that folder, from the top folder.
keep_inputs() {
    local keep=build/check/$LESSON_NN/${BATS_TEST_NUMBER:-0} f
    rm -rf "${FORKLINGS_ROOT:?}/$keep"
    mkdir -p "$FORKLINGS_ROOT/$keep"
    for f in "$BATS_TEST_TMPDIR"/* "$BATS_TEST_TMPDIR"/.[!.]*; do
        [ -e "$f" ] || continue
        case ${f##*/} in    # the harness's own files: not inputs
        stdout | stderr | report | diff | vg.*.log | .actual | .want* | .got* | .failed) continue ;;
        esac
        cp -R "$f" "$FORKLINGS_ROOT/$keep/"
    done
    echo "$keep"
}

# The command to paste, from the repository's top folder, to see the
# failure for yourself: the words quoted, the variables the test set, and
# the test's files copied where they stay.
reproduce() {
    local c="$g_env$g_cmd" keep
    if [[ $c == *"$BATS_TEST_TMPDIR"* ]]; then
        keep=$(keep_inputs)
        c=${c//$BATS_TEST_TMPDIR/$keep}
    fi
    c=${c//$FORKLINGS_ROOT\//}
    if [ -n "$g_forkfail" ]; then   # no shell makes fork() fail: the guard does
        c="build/tests/guard -P build/tests/forkwatch.so -F $g_forkfail -o /dev/stdout -- $c"
    fi
    c="${g_env:+env }$c$g_fds"
    [ -z "$g_limit" ] || c="(${g_limit}exec $c)"
    echo "to reproduce:  $c $g_redirect"
    # Only a lesson has hints; the repository's own suites (learner, docs,
    # harness) do not.
    case $LESSON_NN in
    [0-9][0-9]) echo "stuck?         make hint L=$LESSON_NN" ;;
    esac
}

# show_stderr: the program's stderr for a message, at most 10 lines; the
# rest is kept in a file whose path is named.
show_stderr() {
    local n=${#stderr_lines[@]} keep
    if [ "$n" -le 10 ]; then
        printf '%s\n' "${stderr:-(empty)}"
        return
    fi
    printf '%s\n' "${stderr_lines[@]:0:10}"
    keep=build/check/$LESSON_NN/${BATS_TEST_NUMBER:-0}.stderr
    mkdir -p "$FORKLINGS_ROOT/build/check/$LESSON_NN"
    printf '%s\n' "${stderr_lines[@]}" >"$FORKLINGS_ROOT/$keep"
    echo "... $((n - 10)) more lines in $keep"
}

# Fail the test with a message for the student.
fail() {
    printf '%s\n' "$@" >&2
    return 1
}

# have_wchan: true when /proc/PID/wchan says where a process sleeps (Linux,
# on a kernel that does not hide it). It asks a process that is sure to be
# asleep soon, a sleep(1): a look at one that happens to be running reads
# "0", so a look at the test's own shell would be a lucky sample. The answer
# is kept for the rest of the run.
have_wchan() {
    local pid w="" until known=$BATS_RUN_TMPDIR/have_wchan
    [ ! -e "$known" ] || return "$(cat "$known")"
    if [ -r /proc/self/wchan ]; then
        until=$((SECONDS + 20))
        sleep 60 &
        pid=$!
        while [ $SECONDS -lt $until ]; do
            w=$(wchan_of "$pid")
            [ -z "$w" ] || break
            sleep 0.01
        done
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    [ -n "$w" ]
    echo $? >"$known"
    return "$(cat "$known")"
}

# ---- looking into a running pool (Linux's /proc) ------------------------

# children PID: the pids of PID's children, one a line.
children() {
    ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' '
}

# fd_count PID: how many descriptors PID holds; 0 once it has ended.
fd_count() {
    find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l
}

# wchan_of PID: the kernel function PID sleeps in, or nothing (it runs, it
# has ended, or the kernel does not say).
wchan_of() {
    local w
    w=$(cat "/proc/$1/wchan" 2>/dev/null) || return 0
    [ "$w" = 0 ] || echo "$w"
}

# await_wchan PID REGEX: wait until PID sleeps in a kernel function that
# matches the extended REGEX; fails when PID ends first, or has not got
# there after 20 s.
await_wchan() {
    local until=$((SECONDS + $(scaled 20 | cut -d. -f1)))
    until [[ $(wchan_of "$1") =~ $2 ]]; do
        [ -d "/proc/$1" ] && [ $SECONDS -lt $until ] || return 1
        sleep 0.02
    done
}

# start_background [ENV=VALUE...] -- ARG...: run the lesson's program with
# ARGs in the background under the guard (deadline 60 s, scaled), its
# stdout, stderr and report in the test's out, err and report files. Sets
# bg_guard (the guard's pid) and bg_prog (the program's, once it runs; empty
# when it never did). stop_background ends it; lesson_teardown should call
# stop_background, for a test that fails while its run goes on.
start_background() {
    local dir=$BATS_TEST_TMPDIR deadline env=()
    while [ "$1" != -- ]; do env+=("$1"); shift; done
    shift
    # The deadline is worked out here, not in the background command: a
    # $(...) there runs in a child of the background shell before it
    # becomes the guard, and the loop below would take that child, gone a
    # moment later, for the program.
    deadline=$(scaled 60)
    env -u POOL_TRACE "${env[@]}" "$GUARD" -t "$deadline" -o "$dir/out" -e "$dir/err" \
        -r "$dir/report" -- "$PROG" "$@" 3>&- 2>"$dir/guard.err" &
    bg_guard=$!
    bg_prog=""
    # The guard's one child is the program; before the background shell
    # has become the guard, it has no child that runs the program.
    while [ -z "$bg_prog" ] && kill -0 "$bg_guard" 2>/dev/null; do
        bg_prog=$(ps -o pid=,args= --ppid "$bg_guard" 2>/dev/null |
            awk -v p="$PROG" '$2 == p { print $1; exit }')
        [ -n "$bg_prog" ] || sleep 0.02
    done
}

# stop_background: end the run start_background started, if it still goes
# (the guard kills the program and its workers on SIGTERM).
stop_background() {
    [ -n "${bg_guard:-}" ] || return 0
    kill -TERM "$bg_guard" 2>/dev/null || true
    wait "$bg_guard" 2>/dev/null || true
    bg_guard=""
}

# ---- Python's lists ------------------------------------------------------

# squares N: a file holding the line Python prints for [x*x for x in
# range(N)] (made once a test).
squares() {
    local f=$BATS_TEST_TMPDIR/squares-$1
    [ -f "$f" ] || awk -v n="$1" 'BEGIN {
        printf "["
        for (i = 0; i < n; i++) printf (i ? ", %.0f" : "%.0f"), i * i
        print "]"
    }' >"$f"
    echo "$f"
}

# list_items FILE: FILE's Python list, one item a line.
list_items() {
    sed 's/^\[//; s/\]$//; s/, /\n/g' "$1" | sed '/^$/d'
}

# assert_list FILE: stdout is exactly FILE's one line. On a difference,
# name the first items that differ rather than show two huge lines, then
# the suite's LIST_HINT lines (an array: where the lesson's code puts each
# result) and the reproduce line.
assert_list() {
    local want=$1 got=$BATS_TEST_TMPDIR/stdout
    cmp -s "$want" "$got" && return 0
    local want_items=$BATS_TEST_TMPDIR/want-items got_items=$BATS_TEST_TMPDIR/got-items
    list_items "$want" >"$want_items"
    list_items "$got" >"$got_items"
    fail "stdout is not the expected list: $(wc -l <"$want_items") items expected," \
        "$(wc -l <"$got_items") found; the first differences:" \
        "$(paste -d ' ' "$want_items" "$got_items" | awk '$1 != $2 {
            printf "  item %d: expected %s, got %s\n", NR - 1, ($1 == "" ? "nothing" : $1), ($2 == "" ? "nothing" : $2)
            if (++shown == 5) exit }')" \
        ${LIST_HINT[@]+"${LIST_HINT[@]}"} "$(reproduce)"
}

# Explain a wchan (the kernel function a stuck process sleeps in).
explain_wchan() {
    case $1 in
    *pipe_read* | *pipe_wait*) echo "waiting to read from a pipe" ;;
    *pipe_write*) echo "waiting to write to a full pipe" ;;
    *do_wait* | *wait_consider*) echo "waiting for a child in wait()/waitpid()" ;;
    *nanosleep* | *hrtimer*) echo "sleeping" ;;
    *poll* | *select*) echo "waiting in poll()/select()" ;;
    *sigsuspend* | *pause*) echo "waiting for a signal" ;;
    *) echo "in the kernel at $1" ;;
    esac
}

check_guard_report() {
    local tolerate=$1
    check_kicks "$tolerate" || return 1
    if [ "$g_forkcap" = 1 ]; then
        fail "The program started more than $g_cap processes at once (at least $g_maxprocs) and was stopped." \
            "hint: a forked child probably did not _exit(): it went on running the" \
            "      parent's code, reached the fork() loop again and forked children of" \
            "      its own. End every child with _exit()." "$(reproduce)"
        return 1
    fi
    if [ "$g_timeout" = 1 ]; then
        local msg=() hints=() p pid comm state wchan reads seen="" main="" others=""
        for p in $g_stuck; do
            IFS=: read -r pid comm state wchan reads <<<"$p"
            if [ "$pid" = "$g_pid" ]; then main="$state:$wchan"; else others+=" $state:$wchan"; fi
            if [ "$state" = Z ]; then
                msg+=("  process $pid ($comm): finished, never reaped (zombie)")
            elif [ "${reads:-0}" -gt 1000000 ] 2>/dev/null; then
                msg+=("  process $pid ($comm): running, and it has called read() $reads times")
                seen="$seen rereading"
            elif [ "$state" = R ] || [ "$wchan" = 0 ]; then
                # R, or a wchan of 0: the kernel says it sleeps nowhere (a
                # loop of system calls that never block can show another
                # state letter at the look, never a wchan)
                msg+=("  process $pid ($comm): running, not waiting for anything")
                seen="$seen running"
            else
                msg+=("  process $pid ($comm): $(explain_wchan "$wchan")")
                seen="$seen $wchan"
            fi
        done
        # The parent polls for a result while every worker waits for a task:
        # each waits for the other, and no pipe end is to blame.
        local standoff=""
        if [[ $main == S:*poll* || $main == S:*select* ]] && [ -n "$others" ]; then
            standoff=1
            for p in $others; do
                [[ $p == S:*pipe_read* || $p == S:*pipe_wait* ]] || standoff=""
            done
        fi
        [ -n "$standoff" ] && hints+=(
            "hint: the parent waits in poll() for a result while every worker waits"
            "      for a task: each waits for the other. The parent believes a worker"
            "      holds a chunk: was that chunk really written to it, and is a worker"
            "      marked idle again once its result is in?")
        [ -z "$standoff" ] && [[ $seen == *pipe_read* || $seen == *pipe_wait* ]] && hints+=(
            "hint: a read() from a pipe waits for end-of-file until every write end of"
            "      that pipe is closed, in every process: close the ends you do not use"
            "      right after fork(), in the parent and in each child.")
        [[ $seen == *pipe_write* ]] && hints+=(
            "hint: a write() into a full pipe (64 KiB on Linux) waits until its reader"
            "      reads. If the reader is itself blocked writing to the writer, neither"
            "      moves: read results while you send tasks, from one poll() loop.")
        [[ $seen == *rereading* ]] && hints+=(
            "hint: a loop calls read() again and again: read() returns 0 at end-of-file"
            "      (every write end closed), and 0 will never grow into the bytes you"
            "      wait for. Treat 0 as the end: stop the loop and say so to the caller.")
        [[ $seen == *running* ]] && hints+=(
            "hint: a process is busy in a loop that never ends: does each loop have a"
            "      way out? A wait() loop ends when wait() fails with errno ECHILD.")
        [[ $seen == *do_wait* && ${#hints[@]} = 0 ]] && hints+=(
            "hint: the parent waits for a child that never ends: what is the child doing?")
        [ ${#hints[@]} = 0 ] && hints+=(
            "hint: something waits for an event that never comes, or takes longer than"
            "      the deadline: run the command below and watch it.")
        fail "The program did not finish within $(scaled "$DEADLINE_USED")s and was killed." \
            "${msg[@]}" "${hints[@]}" "$(reproduce)"
        return 1
    fi
    if [ "$g_unreaped" -gt 0 ] 2>/dev/null && [[ $tolerate != *unreaped* ]]; then
        fail "$g_unreaped child process(es) finished but were never reaped (zombies when the program exited)." \
            "hint: did you wait for every child (wait() or waitpid())? Each fork() needs" \
            "      one wait, and the parent must wait before it exits." "$(reproduce)"
        return 1
    fi
    if [ "$g_survivors" -gt 0 ] && [[ $tolerate != *survivors* ]]; then
        fail "$g_survivors process(es) outlived the program (pids $g_survivor_pids)." \
            "hint: did you wait for every child (wait() or waitpid())? A parent must" \
            "      wait for its workers before it exits, and every worker must end." \
            "$(reproduce)"
        return 1
    fi
}

# Every signal the test planned was sent while the program ran. One that
# was not is the test's failure to set up its moment, not the program's
# fault: say so, with the times.
check_kicks() {
    local k sig plan result tolerate=$1
    g_kick_ms=""
    for k in $g_kicks; do
        IFS=: read -r plan result <<<"$k"
        if [[ $result == sent@* ]]; then
            [ -n "$g_kick_ms" ] ||
                g_kick_ms=$(awk -v t="${result#sent@}" 'BEGIN { printf "%d", t * 1000 }')
            continue
        fi
        [[ $tolerate == *unsent* ]] && continue
        sig=${plan%%@*}
        sig=${sig#w*/}
        plan=${plan#*@}
        if [[ $plan == L* ]]; then
            plan="after stdout line ${plan#L}; it printed $g_lines"
        elif [ "$plan" = poll ]; then
            plan="for when it waited in poll()"
        elif [ "$plan" = busy ]; then
            plan="for when it waited in poll() with every worker in a task"
        elif [ "$plan" = stopped ]; then
            plan="for when a worker was stopped"
        else
            plan="at ${plan} s"
        fi
        fail "The program ended after ${result#unsent@} s, before the SIG${sig#SIG} planned $plan:" \
            "the test could not run as planned, so it cannot say whether the program" \
            "handles that signal. A program that ends this early did not do the work" \
            "the test gave it: check that it runs every task." "$(reproduce)"
        return 1
    done
}

# note TEXT: a line for the person running the suite, shown even when the
# test passes (bats prints fd 3 as it comes).
note() {
    echo "# note: $*" >&3
}

# counts_are_exact: true when the last run's process counts came from
# forkwatch; otherwise says what the census could not see, once a test.
counts_are_exact() {
    [ "$g_exact" = 1 ] && return 0
    note "process counts on this machine are sampled, not exact (forkwatch" \
        "reason $g_inexact): checks that need an exact count are left out"
    return 1
}

# assert_pool_of N: the program forked exactly N workers and never held
# more than N + 1 processes (itself and the workers) at once. Exact counts:
# every fork() and every reaping wait() is counted as it happens.
assert_pool_of() {
    local n=$1 most=$(($1 + 1))
    if ! counts_are_exact; then
        [ "$g_maxprocs" -le "$most" ] && return 0
        fail "expected at most $most processes (parent + $n workers), saw $g_maxprocs" "$(reproduce)"
        return 1
    fi
    if [ "$g_forks" -lt "$n" ]; then
        fail "expected the parent to fork $n workers (-j $n), it forked $g_forks." \
            "hint: the pool forks all its workers before it hands out the first task." \
            "$(reproduce)"
        return 1
    fi
    if [ "$g_forks" -gt "$n" ]; then
        fail "expected the parent to fork $n workers (-j $n), there were $g_forks fork()s." \
            "hint: fork each worker once, before the tasks: a worker that forks, or a" \
            "      fork() per task, makes more processes than the pool has workers." \
            "$(reproduce)"
        return 1
    fi
    [ "$g_maxprocs" -le "$most" ] && return 0
    fail "expected at most $most processes at once (parent + $n workers), there were $g_maxprocs." \
        "hint: a worker that is not reaped still holds its process (a zombie)." "$(reproduce)"
}

# assert_forked_at_least N: the program forked N processes or more.
assert_forked_at_least() {
    counts_are_exact || return 0
    [ "$g_forks" -ge "$1" ] && return 0
    fail "expected the program to fork at least $1 worker(s), it forked $g_forks." "$(reproduce)"
}

# assert_no_fork WHAT: the program forked nothing (it failed before its
# pool started, as WHAT says).
assert_no_fork() {
    if counts_are_exact; then
        [ "$g_forks" = 0 ] && return 0
        fail "expected the program to fail before it started a worker ($1)," \
            "but it forked $g_forks process(es)." \
            "hint: check everything that can fail before the first fork(): then" \
            "      there is no worker to stop on the way out." "$(reproduce)"
        return 1
    fi
    [ "$g_maxprocs" -le 1 ] && return 0
    fail "expected the program to fail before it started a worker ($1)," \
        "saw $g_maxprocs processes at once" "$(reproduce)"
}

check_valgrind_logs() {
    local dir=$1 log bad=0
    for log in "$dir"/vg.*.log; do
        [ -s "$log" ] || continue
        bad=1
        echo "valgrind found errors in process ${log##*/vg.}:" >&2
        sed 's/^/  /' "$log" | head -40 >&2
    done
    [ $bad = 0 ] || fail "hint: free what you malloc on every path, and read only what you wrote." "$(reproduce)"
}

# calls_from PROGRAM FUNCTION: the library functions that FUNCTION calls,
# itself or through the program's own functions it calls, one a line, read
# from the machine code (objdump -d). Fails where objdump cannot read it.
calls_from() {
    objdump -d --no-show-raw-insn "$1" 2>/dev/null | awk -v start="$2" '
        /^[0-9a-f]+ <[^>]+>:$/ { fn = $2; gsub(/[<>:]/, "", fn); found[fn] = 1; next }
        /\tcall/ && fn != "" && match($0, /<[^>]+>/) {
            t = substr($0, RSTART + 1, RLENGTH - 2)
            sub(/\+0x[0-9a-f]+$/, "", t)
            calls[fn] = calls[fn] " " t
        }
        END {
            if (!(start in found)) exit 1
            queue[1] = start; seen[start] = 1; n = 1
            for (i = 1; i <= n; i++) {
                m = split(calls[queue[i]], c, " ")
                for (k = 1; k <= m; k++) {
                    t = c[k]
                    if (t ~ /@plt$/) { sub(/@.*$/, "", t); ext[t] = 1 }
                    else if (!(t in seen)) { seen[t] = 1; queue[++n] = t }
                }
            }
            for (e in ext) print e
        }'
}

# assert_handler_is_safe FUNCTION: the signal handler FUNCTION calls only
# functions that signal-safety(7) lists as async-signal-safe (and errno's
# accessor): a handler runs in the middle of whatever the program was
# doing, maybe inside printf() or malloc() with their locks held.
assert_handler_is_safe() {
    local fn=$1 calls f bad=()
    [ "$(uname -s)" = Linux ] || skip "the handler's calls are read from ELF machine code: Linux only"
    command -v objdump >/dev/null 2>&1 || skip "objdump is not installed: the handler's calls cannot be read"
    calls=$(calls_from "$PROG" "$fn") ||
        fail "the program has no function $fn(): the signal handler must keep that name" || return 1
    for f in $calls; do
        case $f in
        write | read | _exit | _Exit | kill | raise | getpid | getppid | sigaction | \
            signal | sigprocmask | pthread_sigmask | sigemptyset | sigaddset | \
            close | __errno_location | __error | __stack_chk_fail | abort | \
            __asan_* | __ubsan_* | __sanitizer_* | __tsan_*) ;;
        *) bad+=("$f()") ;;
        esac
    done
    [ ${#bad[@]} = 0 ] && return 0
    fail "the signal handler $fn() calls ${bad[*]}, which signal-safety(7) does not list" \
        "as async-signal-safe." \
        "hint: a handler may run while the program is inside printf() or malloc(), with" \
        "      their locks held: calling them again can deadlock or corrupt memory. Set" \
        "      a volatile sig_atomic_t flag and write() one byte to the self-pipe;" \
        "      report and clean up in the main loop, after poll() wakes."
}

# --- assertions -------------------------------------------------------------

assert_status() {
    [ "$status" = "$1" ] && return 0
    fail "expected exit status $1, got $status" \
        "stderr was: $(show_stderr)" "$(reproduce)"
}

assert_stderr_empty() {
    [ -z "$stderr" ] && return 0
    fail "expected nothing on stderr, got:" "$(show_stderr)" "$(reproduce)"
}

# assert_usage_error: exit status 2, nothing on stdout, exactly one line on
# stderr that starts with the program's name.
assert_usage_error() {
    assert_status 2 || return 1
    [ ${#stderr_lines[@]} = 1 ] ||
        fail "expected exactly one line on stderr, got ${#stderr_lines[@]}:" "$stderr" "$(reproduce)" || return 1
    [[ ${stderr_lines[0]} == "$SLUG: "* ]] ||
        fail "expected the error line to start with '$SLUG: ', got:" "${stderr_lines[0]}" "$(reproduce)" || return 1
    [ -z "$output" ] ||
        fail "expected nothing on stdout for bad arguments, got:" "$output" "$(reproduce)"
}

# assert_one_stderr_line REGEX: exactly one line on stderr, and it matches
# the extended REGEX (the one-line message every failure promises).
assert_one_stderr_line() {
    [ ${#stderr_lines[@]} = 1 ] ||
        fail "expected exactly one line on stderr, got ${#stderr_lines[@]}:" "$(show_stderr)" \
            "$(reproduce)" || return 1
    assert_match "$1" "${stderr_lines[0]}" "the line on stderr"
}

# assert_output TEXT: stdout is exactly TEXT.
assert_output() {
    [ "$output" = "$1" ] && return 0
    fail "expected stdout:" "$1" "actual stdout:" "${output:-(empty)}" "$(reproduce)"
}

# assert_lines_in_order FILE: stdout holds exactly FILE's lines, in order.
assert_lines_in_order() {
    local actual=$BATS_TEST_TMPDIR/.actual
    printf '%s\n' "${lines[@]}" | sed '/^$/d' >"$actual"
    sed '/^$/d' "$1" | diff -u --label expected --label actual - "$actual" \
        >"$BATS_TEST_TMPDIR/diff" && return 0
    fail "stdout is not the expected lines in the expected order (- expected, + actual;" \
        "the first 30 lines of the difference):" \
        "$(head -30 "$BATS_TEST_TMPDIR/diff")" "$(reproduce)"
}

# assert_lines_any_order FILE: stdout holds each of FILE's lines exactly as
# often as FILE does, in any order, and nothing else. Names the likely cause:
# duplicated lines (stdio buffer copied by fork), torn lines (one line made
# of several writes), missing lines.
assert_lines_any_order() {
    local want=$BATS_TEST_TMPDIR/.want.sorted got=$BATS_TEST_TMPDIR/.got.sorted
    sort "$1" >"$want"
    if [ ${#lines[@]} -gt 0 ]; then printf '%s\n' "${lines[@]}"; fi | sort >"$got"
    cmp -s "$want" "$got" && return 0
    local missing extra repeated strange
    missing=$(comm -23 "$want" "$got")
    extra=$(comm -13 "$want" "$got")
    # grep finds nothing with status 1: `|| true`, or errexit ends the test
    # before the explanation is printed.
    repeated=$(grep -Fxf "$want" <<<"$extra" || true)  # expected, but too often
    strange=$(grep -vFxf "$want" <<<"$extra" || true)  # never expected at all
    local msg=("stdout does not hold the expected lines (order does not matter)."
        "expected $(wc -l <"$want") lines, got ${#lines[@]}.")
    [ -n "$missing" ] && msg+=("missing ($(wc -l <<<"$missing")), first ones:" "$(head -5 <<<"$missing" | sed 's/^/  /')")
    [ -n "$repeated" ] && msg+=("printed too often ($(wc -l <<<"$repeated") extra), first ones:" "$(head -5 <<<"$repeated" | sed 's/^/  /')")
    [ -n "$strange" ] && msg+=("unexpected ($(wc -l <<<"$strange")), first ones:" "$(head -5 <<<"$strange" | sed 's/^/  /')")
    if [ -n "$strange" ] && [ -n "$missing" ]; then
        msg+=("hint: lines came out torn or mixed. Print each line with one call, so"
            "      that it reaches the pipe in one write(), and flush after each line:"
            "      into a pipe, stdio writes whatever fills its buffer, cut anywhere.")
    elif [ -n "$repeated" ]; then
        msg+=("hint: some lines came out more than once. When stdout is a pipe or a"
            "      file, printf() keeps text in a buffer; fork() copies the unflushed"
            "      buffer into the child and both processes print it. Call fflush(NULL)"
            "      just before fork(), and end children with _exit(), not exit().")
    elif [ -n "$missing" ]; then
        msg+=("hint: did every task run, and did every worker flush its output before"
            "      _exit()? _exit() does not flush stdio buffers.")
    fi
    fail "${msg[@]}" "$(reproduce)"
}

# assert_no_duplicate_lines: no line of stdout appears twice.
assert_no_duplicate_lines() {
    local dups
    dups=$(printf '%s\n' "${lines[@]}" | sort | uniq -d | head -5)
    [ -z "$dups" ] && return 0
    fail "these lines came out more than once:" "$dups" \
        "hint: call fflush(NULL) just before fork(): the child gets a copy of" \
        "      every unflushed stdio buffer, and both processes print it." "$(reproduce)"
}

# assert_line_count N
assert_line_count() {
    [ ${#lines[@]} = "$1" ] && return 0
    fail "expected $1 lines on stdout, got ${#lines[@]}" "$(reproduce)"
}

# assert_match REGEX TEXT WHAT: TEXT matches the extended REGEX.
assert_match() {
    [[ $2 =~ $1 ]] && return 0
    fail "expected $3 to match /$1/, got:" "${2:-(empty)}" "$(reproduce)"
}

# Write lines to a file for the assertions above: lines_file NAME LINE...
lines_file() {
    local f=$BATS_TEST_TMPDIR/$1
    shift
    printf '%s\n' "$@" >"$f"
    echo "$f"
}

# assert_same_as_python LESSON "C ARGS" "PYTHON ARGS" [SED]: the solution of
# LESSON and its Python twin, docs/python/LESSON.py, print the same lines,
# as multisets (sorted), each first passed through the sed expression SED
# (to blank out pids, say), and exit with the same status. Skips where
# python3 is not installed.
assert_same_as_python() {
    local lesson=$1 cargs=$2 pyargs=$3 sedexpr=${4:-}
    command -v python3 >/dev/null || skip "python3 is not installed: no side-by-side comparison"
    [ -f "$FORKLINGS_ROOT/docs/python/$lesson.py" ] || fail "docs/python/$lesson.py is missing" || return 1
    local c=build/solutions/$lesson/${lesson#*-}
    make --no-print-directory -s -C "$FORKLINGS_ROOT" "$c" || return 1
    # shellcheck disable=SC2086 # split args on purpose
    run_guarded -- "$FORKLINGS_ROOT/$c" $cargs || return 1
    local c_status=$status
    printf '%s\n' "${lines[@]}" | sed -E "$sedexpr" | sort >"$BATS_TEST_TMPDIR/c.out"
    # shellcheck disable=SC2086 # split args on purpose
    run_guarded --cap 100 --deadline 60 -- python3 "$FORKLINGS_ROOT/docs/python/$lesson.py" $pyargs || return 1
    printf '%s\n' "${lines[@]}" | sed -E "$sedexpr" | sort >"$BATS_TEST_TMPDIR/py.out"
    diff -u --label "C: $lesson $cargs" --label "Python: $lesson.py $pyargs" \
        "$BATS_TEST_TMPDIR/c.out" "$BATS_TEST_TMPDIR/py.out" >"$BATS_TEST_TMPDIR/diff" ||
        fail "the C solution and its Python twin print different lines:" "$(head -30 "$BATS_TEST_TMPDIR/diff")" ||
        return 1
    [ "$c_status" = "$status" ] ||
        fail "the C solution exits with $c_status, its Python twin with $status"
}
