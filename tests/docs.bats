#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The documentation is tested: every relative link resolves; code a README
# quotes from a lesson (behind a `<!-- quote: FILE -->` line) is in that
# file; every command a README or guide shows (`$ ...` in a code block) runs
# as shown: it prints the output lines shown (numbers may differ), or, when
# it shows none, it succeeds;
# each README's Your task names the functions that hold its TODOs, every
# call its hints name exists (tests/lib/tasks);
# each Python twin under docs/python/ prints the same lines as its C
# solution (as a multiset where the order is not promised), and, where the
# tests ask, the same error lines, the same OUTPUT file, or the same end
# when stopped from outside.

# shellcheck disable=SC2154,SC2030,SC2031 # status, output, lines, g_* are set by lib/harness
load lib/harness

COPY=$BATS_FILE_TMPDIR/repo

# A copy of the working tree whose lessons are solved, so that the commands
# the READMEs show print what they show.
setup_file() {
    make --no-print-directory -s -C "$FORKLINGS_ROOT" build/tests/guard || return 1
    copy_worktree "$COPY"
    local d
    for d in "$COPY"/solutions/*/; do
        cp "$d"*.c "$d"*.h "$COPY/lessons/$(basename "$d")/" 2>/dev/null || true
    done
    make --no-print-directory -s -C "$COPY" programs >/dev/null &&
        make --no-print-directory -s -C "$COPY" TREE=solutions programs >/dev/null
}

# Every Markdown file of the project.
markdown_files() {
    (cd "$FORKLINGS_ROOT" && git ls-files -co --exclude-standard '*.md')
}

@test "every relative link in the Markdown files resolves" {
    local md link target bad=()
    while read -r md; do
        while read -r link; do
            case $link in http://* | https://* | mailto:* | \#*) continue ;; esac
            target=${link%%#*}
            [ -e "$FORKLINGS_ROOT/$(dirname "$md")/$target" ] || bad+=("$md: ($link)")
        done < <(grep -oE '\]\([^)]+\)' "$FORKLINGS_ROOT/$md" | sed -E 's/^\]\(//; s/\)$//')
    done < <(markdown_files)
    [ ${#bad[@]} = 0 ] || fail "links that lead nowhere:" "${bad[@]}"
}

@test "each README's Your task names every function its TODOs sit in; every call a hint names exists" {
    command -v python3 >/dev/null || skip "python3 is not installed: tests/lib/tasks is Python"
    local d out bad=()
    for d in "$FORKLINGS_ROOT"/lessons/[0-9][0-9]-*/; do
        d=${d%/}
        out=$("$FORKLINGS_ROOT/tests/lib/tasks" "$d" "$FORKLINGS_ROOT/solutions/${d##*/}") || bad+=("$out")
    done
    [ ${#bad[@]} = 0 ] || fail "README, TODOs and hints disagree:" "${bad[@]}"
}

@test "from lesson 03 on the learner writes at least 60 lines, and a TODO names at most 2 calls (tools/todo-stats -c)" {
    run_guarded --cap 2000 -- "$FORKLINGS_ROOT/tools/todo-stats" -c
    assert_status 0
    local l
    for l in "$FORKLINGS_ROOT"/lessons/[0-9][0-9]-*; do
        assert_match "^${l##*/} +[0-9]+ +[0-9]+ +[0-9]+ +[0-9.]+$" "$(grep "^${l##*/} " <<<"$output")" "the row of ${l##*/}"
    done
}

@test "code quoted from a lesson matches the lesson's file" {
    local md file block n=0 bad=()
    while read -r md; do
        while IFS= read -r file; do
            n=$((n + 1))
            # the code block after the n-th quote marker of this file
            block=$(awk -v want="$file" -v k="$n" '
                index($0, "<!-- quote: " want " -->") { seen++; grab = (seen == k); next }
                grab && /^```/ { if (inside) exit; inside = 1; next }
                grab && inside { print }' "$FORKLINGS_ROOT/$md")
            if [ -z "$block" ] || ! grep -qF -- "$(head -1 <<<"$block")" "$FORKLINGS_ROOT/$file"; then
                bad+=("$md quotes $file: not found there: $(head -1 <<<"$block")")
            elif ! tr '\n' '\1' <"$FORKLINGS_ROOT/$file" | grep -qF -- "$(tr '\n' '\1' <<<"$block")"; then
                bad+=("$md quotes $file: the quote differs from the file")
            fi
        done < <(sed -nE 's/^<!-- quote: ([^ ]+) -->$/\1/p' "$FORKLINGS_ROOT/$md")
        n=0
    done < <(markdown_files)
    [ ${#bad[@]} = 0 ] || fail "${bad[@]}"
    grep -rq '<!-- quote: ' "$FORKLINGS_ROOT/lessons" || fail "no README quotes a lesson's code: nothing was checked"
}

# The commands a Markdown file shows, as "COMMAND<TAB>expected line" rows
# (one row with an empty expectation for a command that shows no output). A
# command goes on over "> " lines, as the shell's continuation prompt shows.
# A block after a line `<!-- example output -->` shows output that changes
# from run to run (timings, layouts): its commands run, their output is not
# compared.
shown_commands() {
    awk '
        /^<!-- example output -->$/ { example = 1; next }
        /^```/ {
            inside = !inside
            if (!inside) { if (cmd != "") flush(); example = 0 }
            next
        }
        !inside { next }
        /^\$ / { if (cmd != "") flush(); cmd = substr($0, 3); n = 0; next }
        /^> / && cmd != "" && n == 0 { cmd = cmd "\037" substr($0, 3); next }
        cmd != "" && $0 != "..." && $0 != "" && !example { print cmd "\t" $0; n++ }
        function flush() { if (n == 0) print cmd "\t"; cmd = "" }
    ' "$1"
}

# Commands that are not run here: the whole proof (it runs this suite),
# interactive or slow ones covered by tests/learner.bats, installs, and a
# command whose comment says "# press ..." (it needs a person at the keys).
skipped_command() {
    [[ $1 =~ ^(make\ test|make\ watch|make\ check|make\ reset|RUNS=|sudo\ |brew\ |xcode-select|wsl\ |git\ clone|cd\ |pkill|npm\ ) ]] ||
        [[ $1 =~ \#\ *press\  ]]
}

# A shown output line as a regular expression: numbers may differ.
line_pattern() {
    sed -E 's/[][\.*^$+?(){}|/]/\\&/g; s/[0-9]+/[0-9]+/g' <<<"$1"
}

@test "every command the READMEs and guides show runs and prints what they show" {
    local md cmd want last="" bad=() ran=0
    while read -r md; do
        while IFS=$'\t' read -r cmd want; do
            cmd=${cmd//$'\037'/$'\n'}           # continuation lines, as typed
            skipped_command "$cmd" && continue
            if [ "$cmd" != "$last" ]; then
                # shellcheck disable=SC2016 # $1 is bash -c's, on purpose
                run_guarded --cap 400 --deadline 60 -- \
                    env -C "$COPY" bash -c 'set -o pipefail; eval "$1" 2>&1 | sed -E "s/\x1b\[[0-9;]*m//g"' _ "$cmd"
                ran=$((ran + 1))
                last=$cmd
            fi
            # A command that shows no output must succeed (`| head` ends a
            # writer with SIGPIPE, 141); one that shows output, say an
            # error it demonstrates, must print those lines.
            if [ -z "$want" ]; then
                [ "$status" = 0 ] || [ "$status" = 141 ] ||
                    bad+=("$md: \$ ${cmd//$'\n'/ \\n }  -> exit status $status: $(head -3 <<<"$output")")
                continue
            fi
            grep -qE "^$(line_pattern "$want")\$" <<<"$output" ||
                bad+=("$md: \$ $cmd  -> no line like: $want")
        done < <(shown_commands "$FORKLINGS_ROOT/$md")
    done < <(markdown_files)
    [ "$ran" -gt 0 ] || fail "no command was found to run"
    [ ${#bad[@]} = 0 ] || fail "${bad[@]}"
}

twin() {
    assert_same_as_python "$@"
}

@test "lesson 01's Python twin prints the same lines (pids aside)" {
    twin 01-fork "" "" 's/(parent|child|is) [0-9]+/\1 PID/g'
}

@test "lesson 02's Python twin prints the seed's 100 greetings, as the C pool does" {
    twin 02-hello-pool "" ""
}

@test "lesson 02's Python twin of the seed's first program matches too" {
    twin 02-hello-pool "-s 1 -n 9" "10 9 1"
}

@test "lesson 03's Python twin prints the same list, for several sizes and chunksizes" {
    twin 03-map "-j 4 10" "4 10"
    twin 03-map "-j 2 -c 7 1000" "2 7 1000"
    twin 03-map "-j 3 0" "3 0"
}

@test "lesson 04's Python twin prints the seed's functor example, map and starmap alike" {
    twin 04-functor "" ""
    twin 04-functor "-j 3 -- 5 -7 1 -2 30 0" "5 -7 1 -2 30 0"
    twin 04-functor "-t -j 2 -- 5 -7 1 -2 30" "-t 5 -7 1 -2 30"
    # bad usage: status 2, nothing on stdout
    twin 04-functor "2" "2"
    twin 04-functor "2 x 1" "2 x 1"
}

# twin_errors LESSON "C ARGS" "PYTHON ARGS" [SED]: twin, and both print the
# same error lines on stderr as well (sorted, after SED): a message a README
# shows is part of what the twin mirrors.
twin_errors() {
    local lesson=$1 cargs=$2 sedexpr=${4:-}
    twin "$@" || return 1
    # twin ran the Python twin last: its stderr is the one still here.
    [[ $g_cmd == python3\ * ]] ||
        fail "twin_errors: expected the Python twin's run last, not: $g_cmd" || return 1
    [ -n "$stderr" ] || fail "the Python twin printed no error: python3 docs/python/$lesson.py $3" || return 1
    printf '%s\n' "${stderr_lines[@]}" | sed -E "$sedexpr" | sort >"$BATS_TEST_TMPDIR/py.err"
    # shellcheck disable=SC2086 # split args on purpose
    run_guarded -- "$FORKLINGS_ROOT/build/solutions/$lesson/${lesson#*-}" $cargs || return 1
    printf '%s\n' "${stderr_lines[@]}" | sed -E "$sedexpr" | sort >"$BATS_TEST_TMPDIR/c.err"
    diff -u --label "C: $lesson $cargs (stderr)" --label "Python: $lesson.py $3 (stderr)" \
        "$BATS_TEST_TMPDIR/c.err" "$BATS_TEST_TMPDIR/py.err" >"$BATS_TEST_TMPDIR/diff" ||
        fail "the C solution and its Python twin print different errors:" "$(head -30 "$BATS_TEST_TMPDIR/diff")"
}

# twin_stopped LESSON "GUARD OPTIONS" "C ARGS" "PYTHON ARGS" [SED]: the C
# solution and its Python twin, each stopped from outside as the guard's
# options say (--kill SIG@WHEN, --group, --head N), end with the same status
# and print the same lines on stderr (after SED). Stdout is not compared:
# how many results get out before the stop is a matter of timing.
twin_stopped() {
    local lesson=$1 gopts=$2 cargs=$3 pyargs=$4 sedexpr=${5:-} c_status
    local c=build/solutions/$lesson/${lesson#*-}
    make --no-print-directory -s -C "$FORKLINGS_ROOT" "$c" || return 1
    # shellcheck disable=SC2086 # split options and args on purpose
    run_guarded $gopts -- "$FORKLINGS_ROOT/$c" $cargs || return 1
    c_status=$status
    printf '%s\n' "${stderr_lines[@]}" | sed -E "$sedexpr" | sort >"$BATS_TEST_TMPDIR/c.err"
    # shellcheck disable=SC2086 # split options and args on purpose
    run_guarded --cap 100 --deadline 60 $gopts -- \
        python3 "$FORKLINGS_ROOT/docs/python/$lesson.py" $pyargs || return 1
    printf '%s\n' "${stderr_lines[@]}" | sed -E "$sedexpr" | sort >"$BATS_TEST_TMPDIR/py.err"
    diff -u --label "C: $lesson $cargs (stderr, $gopts)" \
        --label "Python: $lesson.py $pyargs (stderr, $gopts)" \
        "$BATS_TEST_TMPDIR/c.err" "$BATS_TEST_TMPDIR/py.err" >"$BATS_TEST_TMPDIR/diff" ||
        fail "stopped ($gopts), the C solution and its Python twin print different errors:" \
            "$(head -30 "$BATS_TEST_TMPDIR/diff")" || return 1
    [ "$c_status" = "$status" ] ||
        fail "stopped ($gopts), the C solution exits with $c_status, its Python twin with $status"
}

# assert_same_file C_FILE PY_FILE: both programs wrote their OUTPUT, and
# the two hold the same bytes. Removes both.
assert_same_file() {
    [ -f "$1" ] && [ -f "$2" ] || fail "expected both OUTPUT files; there are: $(ls "$(dirname "$1")")" || return 1
    cmp -s "$1" "$2" || fail "the C solution and its Python twin wrote different OUTPUT:" \
        "$(diff -u "$1" "$2" | head -20)" || return 1
    rm "$1" "$2"
}

# Lesson 05's program writes OUTPUT, not stdout: twin compares the empty
# stdout and the status, assert_same_file what each wrote.
@test "lesson 05's Python twin writes the same OUTPUT, in input order" {
    local w=$BATS_TEST_TMPDIR/w
    mkdir "$w"
    seq -40 60 >"$w/in.txt"
    twin 05-with "-j 3 $w/in.txt $w/c.txt" "-j 3 $w/in.txt $w/py.txt"
    assert_same_file "$w/c.txt" "$w/py.txt"
    printf ' 7 \r\n+8\n-1000000\n' >"$w/blanks.txt"  # as int() takes them
    twin 05-with "-j 2 -d 5 $w/blanks.txt $w/c.txt" "-j 2 -d 5 $w/blanks.txt $w/py.txt"
    assert_same_file "$w/c.txt" "$w/py.txt"
    : >"$w/empty.txt"
    twin 05-with "$w/empty.txt $w/c.txt" "$w/empty.txt $w/py.txt"
    assert_same_file "$w/c.txt" "$w/py.txt"
}

# The failures of the lesson's README, each with the same OUTPUT path for
# both programs: the messages name it. The temporary file's name is random
# (C's mkstemp() makes OUTPUT.XXXXXX, Python's tempfile OUTPUT.xxxxxxxx):
# the rename message has it replaced.
@test "lesson 05's Python twin fails as the C program does: the same message, status 1, no OUTPUT" {
    local w=$BATS_TEST_TMPDIR/w
    mkdir "$w" "$w/dir"
    seq 1 5 >"$w/in.txt"
    printf '1\n2\nabc\n' >"$w/bad.txt"
    twin_errors 05-with "$w/missing.txt $w/out.txt" "$w/missing.txt $w/out.txt"
    twin_errors 05-with "$w/bad.txt $w/out.txt" "$w/bad.txt $w/out.txt"
    twin_errors 05-with "$w/in.txt $w/nodir/out.txt" "$w/in.txt $w/nodir/out.txt"
    twin_errors 05-with "$w/in.txt $w/dir" "$w/in.txt $w/dir" 's/rename [^ ]+ to /rename TMP to /'
    echo old >"$w/out.txt"
    twin_errors 05-with "-j 2 -W 2 $w/in.txt $w/out.txt" "-j 2 -W 2 $w/in.txt $w/out.txt"
    [ "$(cat "$w/out.txt")" = old ] || fail "a failed write (-W) replaced the old OUTPUT"
    [ "$(cd "$w" && echo *)" = "bad.txt dir in.txt out.txt" ] ||
        fail "expected no other file left, found: $(cd "$w" && echo *)"
    # bad usage: status 2 (the wording is argparse's in Python)
    twin 05-with "-j 0 $w/in.txt $w/out.txt" "-j 0 $w/in.txt $w/out.txt"
    twin 05-with "$w/in.txt" "$w/in.txt"
}

@test "lesson 06's Python twin prints the same list as the C program" {
    twin 06-errors "10" "10"
    twin 06-errors "-j 3 -d 5 60" "-j 3 -d 5 60"
    twin 06-errors "0" "0"
}

# Python's exception does not say which task raised it; errors.c's message
# does: its "task N: " is cut.
@test "lesson 06's Python twin reports the failed task's error as the C program does: status 1, no list" {
    local sed='s/^errors: task [0-9]+: /errors: /'
    twin_errors 06-errors "-f 7 10" "-f 7 10" "$sed"
    twin_errors 06-errors "-d 10 -f 0 10" "-d 10 -f 0 10" "$sed"
    # one worker: the first failure is task 3's, in both
    twin_errors 06-errors "-j 1 -f 3,7 10" "-j 1 -f 3,7 10" "$sed"
    # bad usage: status 2 (the wording is argparse's in Python)
    twin 06-errors "-f 12 10" "-f 12 10"
    twin 06-errors "" ""
}

@test "lesson 06's Python twin shows a dead worker's hang only with a deadline (-w)" {
    run_guarded --cap 100 --deadline 60 -- python3 "$FORKLINGS_ROOT/docs/python/06-errors.py" -k 3 10
    assert_status 2
    [[ $stderr == *"wait for ever: add -w SECONDS"* ]] ||
        fail "expected the twin to refuse -k without -w, stderr was:" "$stderr"
}

# Python's pool queues every task at once and never sends SIGKILL: the twin
# cannot say what was in flight, what was never sent, or how many workers
# needed SIGKILL. Those counts are cut from the C program's report.
STOP_REPORT='s/, [0-9]+ discarded, [0-9]+ never sent;/;/; s/, [0-9]+ with SIGKILL$//'

@test "lesson 07's Python twin prints the same results, and terminates after three (-T)" {
    twin 07-shutdown "-j 3 -n 12 -d 10" "-j 3 -n 12 -d 10"
    twin 07-shutdown "-r -j 2 -n 6 -d 0" "-r -j 2 -n 6 -d 0"
    # one worker: the first three results are those of tasks 0, 1, 2
    twin_errors 07-shutdown "-j 1 -T 3 -n 10 -d 0" "-j 1 -T 3 -n 10 -d 0" "$STOP_REPORT"
    twin 07-shutdown "-j 0" "-j 0"
}

# How many tasks are done when the signal comes is timing: that count too.
@test "lesson 07's Python twin stops on Ctrl-C, SIGTERM and a reader that leaves, as the C program does" {
    local sed="$STOP_REPORT; s/: [0-9]+ of /: N of /"
    twin_stopped 07-shutdown "--kill INT@L3 --group" "-j 4 -n 200 -d 50" "-j 4 -n 200 -d 50" "$sed"
    assert_status 130
    twin_stopped 07-shutdown "--kill TERM@L3" "-j 3 -n 200 -d 50" "-j 3 -n 200 -d 50" "$sed"
    assert_status 143
    twin_stopped 07-shutdown "--head 1" "-n 100 -d 20" "-n 100 -d 20"
    assert_status 141
}

@test "lesson 08's Python twin maps as the library's demo does: functor, chunks, recycling, unordered" {
    twin 08-pool "-F 2,3 1 2 3 4 5" "-F 2,3 1 2 3 4 5"
    twin 08-pool "-j 3 -c 7 -n 100" "-j 3 -c 7 -n 100"
    twin 08-pool "-j 2 -m 2 -c 3 -n 30" "-j 2 -m 2 -c 3 -n 30"
    twin 08-pool "-F 2,-3 -- -5 3 -7" "-F 2,-3 -- -5 3 -7"
    twin 08-pool "-u -j 3 -d 5 -n 20" "-u -j 3 -d 5 -n 20"
    twin 08-pool "-n 0" "-n 0"
}

# A failed task: status 1 and no list in both; the messages differ, since
# Python's exception cannot name the item's index or the worker.
@test "lesson 08's Python twin fails as the demo does: a failed task, bad usage, Ctrl-C" {
    twin 08-pool "-j 2 -e 3 1 2 3 4" "-j 2 -e 3 1 2 3 4"
    assert_status 1
    twin 08-pool "" ""
    twin 08-pool "-n 3 4" "-n 3 4"
    twin_stopped 08-pool "--kill INT@L2 --group" "-u -j 2 -d 100 -n 40" "-u -j 2 -d 100 -n 40"
    assert_status 130
}

@test "lesson 09's Python twin prints the same list from shared memory, and rejects what the C program rejects" {
    twin 09-shared "-j 4 10" "-j 4 10"
    twin 09-shared "-j 2 -c 7 1000" "-j 2 -c 7 1000"
    twin 09-shared "-j 3 0" "-j 3 0"
    # bad usage: status 2 (the wording is argparse's in Python)
    twin 09-shared "-j 0 5" "-j 0 5"
    twin 09-shared "" ""
}
