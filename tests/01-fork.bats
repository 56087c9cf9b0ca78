#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Lesson 01 fork: one fork, the child _exit()s, the parent reaps it; the
# line printed before fork() comes out once, through a pipe and a file.
# The starter fails: "the child reports its own pid and its parent's"

# shellcheck disable=SC2154,SC2030,SC2031 # status, output, g_* are set by lib/harness
load lib/harness

# The pids the run printed: banner_pid (the parent, from its first line),
# child_pid and child_ppid (from the child's line).
read_pids() {
    banner_pid=$(sed -nE 's/^parent ([0-9]+): about to fork$/\1/p' <<<"$output" | head -1)
    child_pid=$(sed -nE 's/^child ([0-9]+): my parent is [0-9]+$/\1/p' <<<"$output" | head -1)
    child_ppid=$(sed -nE 's/^child [0-9]+: my parent is ([0-9]+)$/\1/p' <<<"$output" | head -1)
}

# need_child_line: fail, saying why, when the run printed no child line;
# tests that compare pids cannot say more without it.
need_child_line() {
    read_pids
    [ -n "$child_pid" ] && return 0
    fail "there is no line 'child PID: my parent is PPID' to compare with, got:" \
        "$output" "$(likely_cause)" "$(reproduce)"
}

# count REGEX: how many stdout lines match the extended REGEX.
count() {
    grep -cE "$1" <<<"$output" || true
}

# likely_cause: the hint that this run's output points at, from what it
# printed: each mistake of the lesson leaves its own signature.
likely_cause() {
    if [ "$(count '^parent [0-9]+: forked child 0$')" != 0 ]; then
        echo "hint: the parent says 'forked child 0': spawn_child() returned 0 without"
        echo "      forking (its TODO). fork() returns the child's pid in the parent."
    elif [ "$(count ' exited with status | was killed by signal ')" = 0 ]; then
        echo "hint: no line says how the child ended: reap_child() must waitpid() for"
        echo "      it and print its status (its TODO)."
    elif [ "$(count '^parent [0-9]+: about to fork$')" -gt 1 ]; then
        echo "hint: the line from before fork() came out twice: fflush(NULL) just before"
        echo "      fork(), or the child inherits the unflushed buffer and prints it too."
    elif [ "$(count 'atexit handler says goodbye$')" -gt 1 ]; then
        echo "hint: two goodbyes: the child left with exit(), which runs the parent's"
        echo "      atexit() handlers and flushes its buffers. Leave with _exit()."
    elif [ "$(count '^child [0-9]+: my parent is [0-9]+$')" = 0 ]; then
        echo "hint: no line from the child: it must fflush(stdout) before _exit(), which"
        echo "      does not flush; through a pipe or a file the line waits in the buffer."
    fi
}

# expect_each_once: each of the five kinds of line appears exactly once.
expect_each_once() {
    local pattern n
    for pattern in '^parent [0-9]+: about to fork$' '^child [0-9]+: my parent is [0-9]+$' \
        '^parent [0-9]+: forked child [0-9]+$' '^parent [0-9]+: child [0-9]+ exited with status [0-9]+$' \
        '^parent [0-9]+: atexit handler says goodbye$'; do
        n=$(count "$pattern")
        [ "$n" = 1 ] || fail "expected one line matching /$pattern/, got $n, in:" "$output" \
            "$(likely_cause)" "$(reproduce)" || return 1
    done
}

# line_number REGEX: the number of the first stdout line matching REGEX.
line_number() {
    printf '%s\n' "${lines[@]}" | grep -nE "$1" | head -1 | cut -d: -f1
}

@test "prints the line from before fork() once through a pipe" {
    run_prog
    assert_status 0
    assert_stderr_empty
    assert_no_duplicate_lines
    assert_match '^parent [0-9]+: about to fork$' "${lines[0]}" "the first line"
}

@test "prints the line from before fork() once when stdout is a file" {
    run_prog --stdout-file
    assert_status 0
    assert_no_duplicate_lines
    expect_each_once
}

@test "the child reports its own pid and its parent's" {
    run_prog
    need_child_line
    [ "$child_ppid" = "$banner_pid" ] ||
        fail "the child says its parent is '$child_ppid', but the parent's pid is '$banner_pid'" \
            "hint: print getppid() in the child, before it _exit()s" "$(reproduce)"
    [ "$child_pid" != "$banner_pid" ] || fail "the child printed the parent's pid as its own" "$(reproduce)"
}

@test "the parent reports the pid fork() returned to it" {
    run_prog
    need_child_line
    assert_match "^parent $banner_pid: forked child $child_pid\$" \
        "$(grep -E '^parent [0-9]+: forked child' <<<"$output")" "the 'forked child' line"
}

@test "the parent reports the child's exit status" {
    local s
    for s in 3 0 1 255; do
        run_prog -s "$s"
        assert_status 0
        need_child_line
        assert_match "^parent $banner_pid: child $child_pid exited with status $s\$" \
            "$(grep -E 'exited with status' <<<"$output")" "the 'exited with status' line"
    done
}

@test "the child's line comes out before the parent reports its end" {
    run_prog
    local c e
    c=$(line_number '^child ')
    e=$(line_number 'exited with status')
    [ -n "$c" ] && [ -n "$e" ] && [ "$c" -lt "$e" ] ||
        fail "expected the child's line before the 'exited with status' line:" "$output" \
            "hint: the child must fflush(stdout) before _exit(); the parent reports after waitpid()" \
            "$(reproduce)"
}

@test "forks one child and reaps it: no zombie, nothing left running" {
    run_prog
    assert_status 0
    [ "$(grep -c '^child ' <<<"$output")" = 1 ] ||
        fail "expected exactly one line from one child, got:" "$output" "$(reproduce)"
    [ "$g_unreaped" = 0 ] && [ "$g_survivors" = 0 ] ||
        fail "the child was not reaped: call waitpid() in the parent" "$(reproduce)"
}

@test "the atexit handler runs once, in the parent: the child leaves with _exit()" {
    run_prog
    assert_status 0
    read_pids
    local bye
    bye=$(grep -E 'atexit handler says goodbye' <<<"$output" || true)
    [ "$bye" = "parent $banner_pid: atexit handler says goodbye" ] ||
        fail "expected one goodbye, from the parent ($banner_pid), got:" "${bye:-(none)}" \
            "hint: exit() runs every atexit() handler, and the child has a copy of the" \
            "      parent's: a child must leave with _exit(), which runs none." "$(reproduce)"
}

@test "with -b the line from before fork() comes out twice through a pipe" {
    run_prog -b
    assert_status 0
    local n
    n=$(grep -cE '^parent [0-9]+: about to fork$' <<<"$output")
    [ "$n" = 2 ] || fail "-b leaves out the fflush(NULL) before fork(), so through a pipe the" \
        "banner should appear twice (once from the child's copy of the buffer); got $n:" \
        "$output" "$(reproduce)"
}

# expect_stdout_error REASON: the run failed as a write error to stdout
# must: status 1 and exactly one line on stderr, "fork: stdout: REASON".
expect_stdout_error() {
    [ "$status" = 1 ] && [ ${#stderr_lines[@]} = 1 ] &&
        [ "${stderr_lines[0]}" = "fork: stdout: $1" ] && return 0
    fail "expected status 1 and one line on stderr, 'fork: stdout: $1';" \
        "got status $status, stderr:" "$(show_stderr)" \
        "hint: every line was lost, so the program must not exit 0 in silence." \
        "      check_stdout() (given, registered with atexit() first, so that it" \
        "      runs last) flushes stdout and checks ferror(): keep it registered" \
        "      before say_goodbye(), and let the parent leave through exit()." \
        "$(reproduce)"
}

@test "a full disk is an error: status 1 and one line, fork: stdout: No space left on device" {
    # /dev/full fails every write with ENOSPC, the child's and the parent's.
    run_prog --stdout /dev/full
    expect_stdout_error "No space left on device"
    assert_forked_at_least 1
    run_prog --stdout /dev/full -h
    expect_stdout_error "No space left on device"
}

@test "a closed stdout is an error: status 1 and one line, fork: stdout: Bad file descriptor" {
    [ "${FORKLINGS_VALGRIND:-}" = 1 ] && skip "valgrind opens its log file on the closed descriptor 1, which then takes the program's stdout"
    run_prog --close 1
    expect_stdout_error "Bad file descriptor"
}

@test "runs as usual with stdin or stderr closed" {
    local fd
    for fd in 0 2; do
        run_prog --close "$fd"
        assert_status 0
        expect_each_once
    done
}

@test "-h prints usage on stdout and exits 0" {
    run_prog -h
    assert_status 0
    assert_match '^usage: fork' "$output" "stdout"
}

@test "rejects bad arguments with one line on stderr and status 2" {
    local args
    for args in "-s 256" "-s -1" "-s abc" "-s" "-x" "extra"; do
        # shellcheck disable=SC2086 # split args on purpose
        run_prog $args
        assert_usage_error
    done
}
