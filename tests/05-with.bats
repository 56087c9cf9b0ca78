#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Lesson 05 with: every way out of the program releases files, memory,
# pipes and workers, in both styles (cleanup attribute; -g, goto ladder).
# The starter fails: "writes Instance(x) of each input number x to OUTPUT, in input order"

# shellcheck disable=SC2154 # status, output, g_* are set by lib/harness
load lib/harness

STYLES=("" -g)                  # run_with(), then run_goto()

lesson_setup() {
    WORK=$BATS_TEST_TMPDIR/work
    mkdir -p "$WORK"
    export FORKLINGS_FD_REPORT=$BATS_TEST_TMPDIR/fds
}

# After a failed test whose program left workers behind, say where in this
# lesson they should have been stopped (unless the test has said so itself:
# OWN_HINT); after one whose program hung, the test's HANG_HINT, if set.
lesson_teardown() {
    if [ -z "${BATS_TEST_COMPLETED:-}" ] && [ "${g_timeout:-0}" = 1 ] && [ -n "${HANG_HINT:-}" ]; then
        printf '%s\n' "$HANG_HINT" >&2
    elif [ -z "${BATS_TEST_COMPLETED:-}" ] && [ -z "${OWN_HINT:-}" ] &&
        { [ "${g_unreaped:-0}" != 0 ] || [ "${g_survivors:-0}" != 0 ]; }; then
        printf '%s\n' \
            "hint: after an error, nothing but pool_release() stops the workers: when" \
            "      pool_join() has not run, it calls pool_terminate(), which sends each" \
            "      worker SIGTERM and then waitpid()s for each." >&2
    fi
}

# numbers FIRST LAST: an input file of FIRST..LAST, one a line.
numbers() {
    local f=$WORK/in-$1-$2.txt
    seq "$1" "$2" >"$f"
    echo "$f"
}

# instances FIRST LAST: the expected output for numbers FIRST LAST, each x
# mapped to the seed's Instance(x) = Multi(x, 2, 3) = 3 * (3x + 2).
instances() {
    local f=$BATS_TEST_TMPDIR/instances-$1-$2
    seq "$1" "$2" | awk '{ printf "%.0f\n", 3 * (3 * $1 + 2) }' >"$f"
    echo "$f"
}

# run_with [run_prog options] [--] ARGS: run_prog, with a fresh report of
# the descriptors open at exit.
run_with() {
    rm -f "$FORKLINGS_FD_REPORT"
    run_prog "$@"
}

# assert_file_is FILE EXPECTED: FILE exists and holds EXPECTED's bytes.
assert_file_is() {
    [ -f "$1" ] || fail "expected the output file ${1##*/}; there is none" \
        "hint: output_commit() renames the temporary file to OUTPUT." \
        "$(reproduce)" || return 1
    cmp -s "$2" "$1" && return 0
    fail "the output file is not the expected one (- expected, + actual):" \
        "$(diff -u "$2" "$1" | sed -n '3,20p')" "$(reproduce)"
}

# assert_folder_holds NAME...: $WORK holds exactly these names: no partial
# OUTPUT where a run failed, and no temporary file left in any case.
assert_folder_holds() {
    local want got
    want=$(printf '%s\n' "$@" | sort)
    got=$(find "$WORK" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort)
    [ "$want" = "$got" ] && return 0
    local extra
    extra=$(comm -13 <(echo "$want") <(echo "$got") | tr '\n' ' ')
    fail "the folder of INPUT and OUTPUT should hold only: $*" \
        "it holds: $(echo "$got" | tr '\n' ' ')" \
        "${extra:+left over: $extra}" \
        "hint: a failed run must leave no OUTPUT and no temporary file: write" \
        "      to the temporary file, rename it only when all went well, and" \
        "      let output_discard() remove it on every other way out." \
        "$(reproduce)"
}

# assert_no_open_fds: every process that left through exit() reported, in
# $FORKLINGS_FD_REPORT, no descriptor above 2 still open.
assert_no_open_fds() {
    [ -s "$FORKLINGS_FD_REPORT" ] ||
        fail "the program reported no descriptors at exit (\$FORKLINGS_FD_REPORT)." \
            "hint: main() registers report_descriptors() with atexit() (DO NOT" \
            "      CHANGE); a program that ends by a signal or _exit() skips it." \
            "$(reproduce)" || return 1
    local open
    # valgrind's own log files show up in its processes: not the program's.
    open=$(sed -E 's# [0-9]+=[^ ]*/vg\.[0-9]+\.log##g; s#^([0-9]+:)$#\1 none#' \
        "$FORKLINGS_FD_REPORT" | grep -v ': none$' || true)
    [ -z "$open" ] && return 0
    fail "descriptors above 2 were still open at exit (pid: descriptors):" \
        "$open" \
        "hint: every file and pipe end needs its release on every way out:" \
        "      file_close() for the input, output_discard() for the output," \
        "      pool_release() for the pipes (pool_terminate() closes them)." \
        "$(reproduce)"
}

# assert_succeeded STYLE: status 0. A status 1 with nothing on stderr is
# what the starter's run_with() stub returns: say so.
assert_succeeded() {
    if [ "$status" = 1 ] && [ -z "$stderr" ]; then
        if [ -z "$1" ]; then
            fail "expected exit status 0, got 1 with nothing on stderr." \
                "hint: every failure says why in one line; a silent 1 is the starter's" \
                "      run_with() stub (item 4 of the README's Your task). The same" \
                "      run with -g goes through run_goto(), whose steps are given:" \
                "      run_with() is that program, written with the cleanup attribute." \
                "$(reproduce)"
        else
            fail "expected exit status 0, got 1 with nothing on stderr." \
                "hint: every failure says why in one line: run_goto() (-g) must" \
                "      return the status its ladder sets, 0 when everything worked." \
                "$(reproduce)"
        fi
        return 1
    fi
    assert_status 0
}

# assert_stderr_has LINE: one line of stderr is exactly LINE.
assert_stderr_has() {
    local l
    for l in "${stderr_lines[@]}"; do
        [ "$l" = "$1" ] && return 0
    done
    fail "expected this line on stderr:" "  $1" "stderr was:" "$(show_stderr)" \
        "$(reproduce)"
}

# assert_failed_cleanly: status 1, nothing on stdout, no descriptor open.
assert_failed_cleanly() {
    assert_status 1 || return 1
    [ -z "$output" ] || fail "expected nothing on stdout, got:" "$output" "$(reproduce)" || return 1
    assert_no_open_fds
}

# assert_no_worker_started WHY: the program failed before its pool started.
assert_no_worker_started() {
    assert_no_fork "$1"
}

@test "writes Instance(x) of each input number x to OUTPUT, in input order" {
    local in style
    in=$(numbers 1 10)
    for style in "${STYLES[@]}"; do
        run_with ${style:+"$style"} -j 3 "$in" "$WORK/out.txt"
        assert_succeeded "$style"
        assert_stderr_empty
        assert_file_is "$WORK/out.txt" "$(instances 1 10)"
        assert_folder_holds in-1-10.txt out.txt
        assert_no_open_fds
        rm "$WORK/out.txt"
    done
}

@test "waits for every worker on the normal way out: all results, every worker reaped" {
    local in style
    in=$(numbers 1 24)
    for style in "${STYLES[@]}"; do
        run_with ${style:+"$style"} -j 4 -d 20 "$in" "$WORK/out.txt"
        assert_succeeded "$style"
        assert_stderr_empty
        assert_file_is "$WORK/out.txt" "$(instances 1 24)"
        assert_pool_of 4
        rm "$WORK/out.txt"
    done
}

@test "many numbers come back whole and in order" {
    local in
    # 68,000 numbers on 2 workers: chunks of 68000 / 8 = 8,500 items, so
    # every task and result record holds 68,000 bytes of values, more than a
    # pipe holds (65,536). Its writer blocks when the pipe is full, and one
    # read() returns at most what the pipe holds: values read with a single
    # read() are certain to come cut short.
    in=$(numbers -34000 33999)
    run_with -j 2 "$in" "$WORK/out.txt"
    if [ "$status" != 0 ]; then
        fail "expected status 0, got $status; stderr was:" "$(show_stderr)" \
            "hint: each record here is bigger than a pipe holds (64 KiB), so it" \
            "      arrives in parts: read it with readn(), which loops until it has" \
            "      every byte, never with a single read()." "$(reproduce)"
        return 1
    fi
    assert_file_is "$WORK/out.txt" "$(instances -34000 33999)"
    assert_no_open_fds
}

@test "an empty INPUT gives an empty OUTPUT" {
    local style
    : >"$WORK/empty.txt"
    for style in "${STYLES[@]}"; do
        run_with ${style:+"$style"} "$WORK/empty.txt" "$WORK/out.txt"
        assert_succeeded "$style"
        assert_file_is "$WORK/out.txt" "$WORK/empty.txt"
        assert_no_open_fds
        rm "$WORK/out.txt"
    done
}

@test "a missing INPUT: status 1, one message, no OUTPUT, no worker started" {
    local style
    for style in "${STYLES[@]}"; do
        run_with ${style:+"$style"} "$WORK/missing.txt" "$WORK/out.txt"
        assert_failed_cleanly
        assert_output ""
        assert_stderr_has "with: open $WORK/missing.txt: No such file or directory"
        [ ${#stderr_lines[@]} = 1 ] || fail "expected one line on stderr, got:" "$(show_stderr)" || return 1
        assert_no_worker_started "the INPUT file is missing"
        assert_folder_holds
    done
}

@test "a bad line: names the file and the line, no OUTPUT" {
    local style
    printf '1\n2\nabc\n4\n' >"$WORK/bad.txt"
    for style in "${STYLES[@]}"; do
        run_with ${style:+"$style"} "$WORK/bad.txt" "$WORK/out.txt"
        assert_failed_cleanly
        assert_stderr_has "with: $WORK/bad.txt:3: not a number from -1000000 to 1000000: 'abc'"
        assert_no_worker_started "a line of INPUT is not a number"
        assert_folder_holds bad.txt
    done
}

@test "a failure in the middle of the map stops the busy workers at once, no OUTPUT" {
    local in style
    in=$(numbers 1 320)
    for style in "${STYLES[@]}"; do
        # 320 items, 4 workers: chunks of 20 items, of 200 ms each. Worker 0
        # gives up on its first item after 200 ms, while the 3 others are
        # busy with their chunks. Stopped at once, the run takes about 200 ms;
        # waiting for them takes 20 * 200 = 4000 ms at the very least, since a
        # sleep never ends early. The bound, 2000 ms, is half the least a
        # wrong run can take, and leaves a right run 1800 ms for starting up
        # on a busy machine: the observation cannot miss either way.
        run_with --deadline 20 ${style:+"$style"} -j 4 -d 200 -F 1 "$in" "$WORK/out.txt"
        assert_failed_cleanly
        assert_match "^with: worker [0-9]+: giving up on 1 \(-F\)$" "${stderr_lines[0]:-}" "the first line on stderr"
        assert_match "^with: worker [0-9]+ exited without the results for items 0 to 19$" "${stderr_lines[1]:-}" "the second line on stderr"
        assert_folder_holds in-1-320.txt
        if ! slow_mode; then
            [ "$g_elapsed_ms" -lt 2000 ] ||
                fail "the program took $g_elapsed_ms ms; stopping the workers at once takes about 200," \
                    "waiting for them to finish their chunks at least 4000." \
                    "hint: on an error path pool_release() terminates the workers (SIGTERM)," \
                    "      it does not wait for them to finish their chunks." "$(reproduce)" || return 1
        fi
    done
}

@test "an OUTPUT in a folder that does not exist: status 1, nothing created" {
    local in style
    in=$(numbers 1 5)
    for style in "${STYLES[@]}"; do
        run_with ${style:+"$style"} -j 2 "$in" "$WORK/nowhere/out.txt"
        assert_failed_cleanly
        assert_stderr_has "with: create $WORK/nowhere/out.txt: No such file or directory"
        assert_folder_holds in-1-5.txt
    done
}

@test "a write that fails (-W) removes the temporary file and keeps the old OUTPUT as it was" {
    local in style
    in=$(numbers 1 10)
    for style in "${STYLES[@]}"; do
        echo "the old output" >"$WORK/out.txt"
        run_with ${style:+"$style"} -j 2 -W 4 "$in" "$WORK/out.txt"
        assert_failed_cleanly
        assert_stderr_has "with: write $WORK/out.txt: No space left on device (-W 4)"
        assert_file_is "$WORK/out.txt" <(echo "the old output")
        assert_folder_holds in-1-10.txt out.txt
    done
}

@test "an OUTPUT that cannot be replaced (a folder) leaves no temporary file" {
    local in style
    in=$(numbers 1 5)
    mkdir "$WORK/out"
    for style in "${STYLES[@]}"; do
        run_with ${style:+"$style"} -j 2 "$in" "$WORK/out"
        assert_failed_cleanly
        assert_match "^with: rename $WORK/out\.[A-Za-z0-9]{6} to $WORK/out: Is a directory$" \
            "${stderr_lines[0]:-}" "the line on stderr"
        assert_folder_holds in-1-5.txt out
    done
}

@test "a forked child that returns out of the pool's scope leaves the parent's pool alone (-R)" {
    local in style
    in=$(numbers 1 12)
    for style in "${STYLES[@]}"; do
        run_with ${style:+"$style"} -R -j 3 "$in" "$WORK/out.txt"
        if [ "$status" != 0 ]; then
            fail "expected status 0, got $status; stderr was:" "$(show_stderr)" \
                "hint: the child's cleanup ran pool_release() on its copy of the pool." \
                "      In a child, pool_release() must not signal or wait for the" \
                "      workers: they are the parent's. Compare p->owner with getpid()." \
                "$(reproduce)"
            return 1
        fi
        assert_stderr_empty
        assert_file_is "$WORK/out.txt" "$(instances 1 12)"
        [ "$(wc -l <"$FORKLINGS_FD_REPORT")" = 2 ] ||
            fail "expected the parent and the child to leave through exit(), saw:" \
                "$(cat "$FORKLINGS_FD_REPORT")" "$(reproduce)" || return 1
        assert_no_open_fds
        rm "$WORK/out.txt"
    done
}

# The parent's log among valgrind's logs in DIR: the one whose parent is
# not one of the logged processes.
top_log() {
    local log pids
    pids=$(for log in "$1"/vg.*.log; do basename "$log" .log; done | sed 's/^vg\.//')
    for log in "$1"/vg.*.log; do
        grep -qxF "$(sed -nE 's/^==[0-9]+== Parent PID: ([0-9]+)$/\1/p' "$log")" <<<"$pids" ||
            echo "$log"
    done
}

# valgrind_clean STYLE: run each way out under valgrind, with
# --track-fds=yes; fail when any process has a memory error or a definite
# leak, or the parent exits with a descriptor above 2 open.
valgrind_clean() {
    command -v valgrind >/dev/null || skip "valgrind is not installed"
    [ "${FORKLINGS_VALGRIND:-}" != 1 ] || skip "every run is under valgrind already"
    [ "$FORKLINGS_SANITIZE" != 1 ] || skip "valgrind cannot run a sanitizer build"
    local in args log open dir=$BATS_TEST_TMPDIR/vg
    in=$(numbers 1 10)
    printf '1\n2\nabc\n4\n' >"$WORK/bad.txt"
    for args in "-R -j 1 $in $WORK/out.txt" "-F 5 -j 2 $in $WORK/out.txt" \
        "-W 3 -j 1 $in $WORK/out.txt" "-j 1 $WORK/bad.txt $WORK/out.txt"; do
        rm -rf "$dir" && mkdir "$dir"
        # shellcheck disable=SC2086 # split args on purpose
        run_guarded --deadline 30 -- valgrind --track-fds=yes --leak-check=full \
            --show-leak-kinds=definite --errors-for-leak-kinds=definite \
            --child-silent-after-fork=no "--log-file=$dir/vg.%p.log" \
            "$PROG" $1 $args
        for log in "$dir"/vg.*.log; do
            grep -q 'ERROR SUMMARY: 0 errors' "$log" ||
                fail "valgrind found errors in process ${log##*/vg.}:" \
                    "$(grep -E '^==[0-9]+== ' "$log" | sed -n '8,40p')" \
                    "hint: free what you malloc on every way out." "$(reproduce)" || return 1
        done
        log=$(top_log "$dir")
        open=$(grep -E '^==[0-9]+== Open file descriptor [0-9]+:' "$log" |
            grep -vE 'descriptor [012]:|vg\.[0-9]+\.log' || true)
        [ -z "$open" ] ||
            fail "valgrind saw descriptors open when the program exited:" "$open" \
                "$(grep -A4 -E 'Open file descriptor' "$log" | head -20)" "$(reproduce)" || return 1
    done
}

@test "valgrind: no way out of run_with() leaks memory or a descriptor, in any process" {
    valgrind_clean ""
}

@test "valgrind: no way out of run_goto() (-g) leaks memory or a descriptor, in any process" {
    valgrind_clean -g
}

# ---- the fault matrix: killed, stopped, closed, full, limited --------------

@test "no worker outlives its parent killed in the middle of a task" {
    local in style
    in=$(numbers 1 2)
    # Two workers, one item of 5 s each: SIGKILL to the parent while both
    # sleep in it. No clean-up of the parent can run: only the kernel's
    # parent-death signal ends the workers within the second of --linger.
    # The workers that died with it are zombies no one could reap (their
    # parent was killed): --tolerate unreaped.
    OWN_HINT=1
    for style in "${STYLES[@]}"; do
        run_with --kill KILL@busy --linger 1 --tolerate unreaped --tolerate survivors \
            ${style:+"$style"} -j 2 -d 5000 "$in" "$WORK/out.txt"
        assert_status 137
        assert_stderr_empty
        [ "$g_survivors" = 0 ] ||
            fail "$g_survivors worker(s) still ran a second after their parent was killed (pids $g_survivor_pids)." \
                "hint: a killed parent runs no clean-up, not even a cleanup attribute:" \
                "      right after fork(), each worker asks the kernel to kill it when its" \
                "      parent dies (die_with_parent(), prctl(PR_SET_PDEATHSIG))." "$(reproduce)" || return 1
        assert_folder_holds in-1-2.txt
    done
}

@test "a worker killed in the middle of a task: status 1, one line, the others stopped" {
    local in style
    in=$(numbers 1 2)
    for style in "${STYLES[@]}"; do
        run_with --kill w0/KILL@busy ${style:+"$style"} -j 2 -d 5000 "$in" "$WORK/out.txt"
        assert_failed_cleanly
        assert_one_stderr_line "^with: worker [0-9]+ exited without the results for items 0 to 0$"
        assert_folder_holds in-1-2.txt
    done
}

@test "a stopped worker does not hang the way out when another fails" {
    local in style
    HANG_HINT="hint: pool_terminate() sends SIGTERM, then SIGCONT: a stopped worker acts
      on SIGTERM only once it is continued, and until then the waitpid()
      for it never returns."
    in=$(numbers 1 2)
    for style in "${STYLES[@]}"; do
        # Worker 1 is stopped (SIGSTOP) in its item; a second later worker 0
        # gives up on its own (-F 1). pool_release() must end worker 1 too:
        # a stopped process holds SIGTERM pending until SIGCONT.
        run_with --kill w1/STOP@busy ${style:+"$style"} -j 2 -d 1000 -F 1 "$in" "$WORK/out.txt"
        assert_failed_cleanly
        assert_match "^with: worker [0-9]+: giving up on 1 \(-F\)$" "${stderr_lines[0]:-}" "the first line on stderr"
        assert_match "^with: worker [0-9]+ exited without the results for items 0 to 0$" "${stderr_lines[1]:-}" "the second line on stderr"
        assert_folder_holds in-1-2.txt
    done
}

@test "stdout to a full disk (/dev/full): a run that prints nothing works; -h fails with one line" {
    local in style
    in=$(numbers 1 5)
    for style in "${STYLES[@]}"; do
        run_with --stdout /dev/full ${style:+"$style"} -j 2 "$in" "$WORK/out.txt"
        assert_status 0
        assert_stderr_empty
        assert_file_is "$WORK/out.txt" "$(instances 1 5)"
        rm "$WORK/out.txt"
        run_with --stdout /dev/full ${style:+"$style"} -h
        assert_status 1
        assert_one_stderr_line '^with: stdout: No space left on device$'
    done
}

@test "stdin or stdout closed: a run works" {
    local in fd style
    in=$(numbers 1 5)
    for style in "${STYLES[@]}"; do
        for fd in 0 1; do
            run_with --close "$fd" ${style:+"$style"} -j 2 "$in" "$WORK/out.txt"
            assert_status 0
            assert_stderr_empty
            assert_file_is "$WORK/out.txt" "$(instances 1 5)"
            assert_no_open_fds
            rm "$WORK/out.txt"
        done
    done
}

@test "-h with stdout closed is a write error: status 1 and one line" {
    [ "${FORKLINGS_VALGRIND:-}" != 1 ] || skip "valgrind opens its log on the lowest free descriptor, the closed stdout: the output would go into its log"
    local style
    for style in "${STYLES[@]}"; do
        run_with --close 1 ${style:+"$style"} -h
        assert_status 1
        assert_one_stderr_line '^with: stdout: Bad file descriptor$'
    done
}

@test "| head -1: -h gives its first line, and nothing is left" {
    local style
    for style in "${STYLES[@]}"; do
        run_with --head 1 ${style:+"$style"} -h
        assert_status 0
        assert_stderr_empty
        assert_match '^usage: with ' "${lines[0]:-}" "the first line of stdout"
    done
}

@test "too few descriptors (ulimit -n): status 1, one line, nothing left" {
    [ "${FORKLINGS_VALGRIND:-}" != 1 ] || skip "valgrind needs descriptors of its own: ulimit -n 8 is too low for it"
    local in style
    in=$(numbers 1 5)
    for style in "${STYLES[@]}"; do
        # 8 descriptors: 0 to 2, and room for the pipes of one worker only.
        run_with --nofile 8 ${style:+"$style"} -j 4 "$in" "$WORK/out.txt"
        assert_failed_cleanly
        assert_one_stderr_line '^with: pipe: Too many open files$'
        assert_forked_at_least 1
        assert_folder_holds in-1-5.txt
    done
}

@test "fork() failing (ulimit -u): status 1, one line, the workers started are reaped" {
    local in style
    in=$(numbers 1 5)
    for style in "${STYLES[@]}"; do
        run_with --fork-fails-after 2 ${style:+"$style"} -j 4 "$in" "$WORK/out.txt"
        assert_failed_cleanly
        assert_one_stderr_line '^with: fork: Resource temporarily unavailable$'
        assert_pool_of 2
        assert_folder_holds in-1-5.txt
    done
}

@test "-h prints usage on stdout and exits 0" {
    run_with -h
    assert_status 0
    assert_match '^usage: with ' "$output" "stdout"
    assert_stderr_empty
}

@test "rejects bad arguments with one line on stderr and status 2" {
    local args
    for args in "-j 0 a b" "-j abc a b" "-j -3 a b" "-j 99999 a b" "-j" "-x a b" \
        "-d -1 a b" "-F 1x a b" "-W -2 a b" "" "onlyinput" "a b c"; do
        # shellcheck disable=SC2086 # split args on purpose
        run_with $args
        assert_usage_error
    done
}
