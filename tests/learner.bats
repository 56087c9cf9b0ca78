#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The learner's commands (make, check, run, hint, watch, reset, solution,
# doctor, report), each tried in a fresh copy of the repository, as a
# student would: a starter fails, a solved lesson passes and shows as passed,
# progress is re-checked when a file changes, reset restores a starter.

# shellcheck disable=SC2154 # status, output, g_* are set by lib/harness
load lib/harness

COPY=$BATS_FILE_TMPDIR/repo

# A copy of the working tree (tracked and new files, not build/) with
# lessons 01, 02 and 05 only (05 for a reproduce line with files), to keep this suite quick as lessons are added, made
# a git repository of its own so that reset has a starter to restore.
setup_file() {
    make --no-print-directory -s -C "$FORKLINGS_ROOT" build/tests/guard || return 1
    copy_worktree "$COPY" '^(lessons/|solutions/|tests/|tests/mutants/)(0[346-9]|[1-9][0-9])-'
    (cd "$COPY" && git init -q && git add -A &&
        git -c user.name=student -c user.email=student@example.invalid commit -qm starter)
}

# in_copy [OPTIONS] -- COMMAND...: run COMMAND in the copy under the guard;
# a whole lesson check runs bats and many programs, so the cap is high.
in_copy() {
    local opts=()
    while [ "$1" != -- ]; do opts+=("$1"); shift; done
    shift
    run_guarded --cap 400 --deadline 120 "${opts[@]}" -- \
        env -C "$COPY" TERM=dumb "$@"
}

solve() { # solve NN-slug: put the reference solution in the learner's tree
    cp "$COPY/solutions/$1"/*.c "$COPY/lessons/$1"/
}

@test "make prints the lesson table and the next step, and exits 0" {
    in_copy -- make --no-print-directory
    assert_status 0
    assert_match '01  fork +not yet checked' "$output" "the table"
    assert_match 'next: lesson 01 fork  ->  make check L=01' "$output" "the next step"
}

@test "make check fails on a starter, says why and how to get a hint" {
    in_copy -- make --no-print-directory check L=01
    [ "$status" -ne 0 ] || fail "make check passed an unsolved starter"
    assert_match '✗ [a-z]' "$output" "the failed test"
    assert_match 'not passed yet' "$output" "the verdict"
    assert_match 'make hint L=01' "$output" "the way to a hint"
}

@test "make check stops at the first failure and says how many were not run; ALL=1 runs all" {
    in_copy -- make --no-print-directory check L=01
    [ "$(grep -c '^  ✗' <<<"$output")" = 1 ] || fail "expected exactly one failed test shown, got:" "$output" || return 1
    assert_match '[0-9]+ more test\(s\) not run after the first failure \(make check L=01 ALL=1' "$output" "the count of tests not run"
    in_copy -- make --no-print-directory check L=01 ALL=1
    [ "$(grep -c '^  ✗' <<<"$output")" -ge 2 ] || fail "expected ALL=1 to run every test, got:" "$output" || return 1
    [[ $output != *"not run after the first failure"* ]] || fail "ALL=1 still stopped early:" "$output"
}

@test "a solved lesson passes, shows as passed, and the next one is named" {
    solve 01-fork
    in_copy -- make --no-print-directory check L=01
    assert_status 0
    assert_match 'lesson 01 fork: passed' "$output" "the verdict"
    in_copy -- make --no-print-directory
    assert_match '01  fork +passed' "$output" "the table"
    assert_match 'next: lesson 02 hello-pool' "$output" "the next step"
}

@test "make re-checks a lesson whose file changed, and only that one" {
    solve 01-fork
    in_copy -- make --no-print-directory check L=01
    echo '/* an edit */' >>"$COPY/lessons/01-fork/fork.c"
    in_copy -- make --no-print-directory
    assert_match 're-checking 01-fork' "$output" "make's output"
    [[ $output != *"re-checking 02"* ]] || fail "lesson 02 was re-checked though unchanged"
    in_copy -- make --no-print-directory
    [[ $output != *"re-checking"* ]] || fail "a second make re-checked again:" "$output"
}

@test "make hint shows one more level on each call" {
    in_copy -- make --no-print-directory hint L=02
    assert_match 'Hint 1 of [0-9]+' "$output" "the first call"
    in_copy -- make --no-print-directory hint L=2
    assert_match 'Hint 2 of [0-9]+' "$output" "the second call"
}

@test "make run builds and runs the learner's program with ARGS" {
    solve 02-hello-pool
    in_copy -- make --no-print-directory run L=02 "ARGS=-j 2 -n 3"
    assert_status 0
    assert_lines_any_order "$(lines_file want 'hello for 0th time!' 'hello for 1th time!' 'hello for 2th time!')"
}

@test "make reset asks first, then restores one starter and leaves the rest" {
    solve 01-fork
    solve 02-hello-pool
    in_copy -- make --no-print-directory reset L=01
    [ "$status" -ne 0 ] || fail "reset without a yes went ahead"
    assert_match 'CONFIRM=yes' "$output$stderr" "the refusal"
    ! grep -q 'TODO(01)' "$COPY/lessons/01-fork/fork.c" || fail "the file changed without a yes"
    in_copy -- make --no-print-directory reset L=01 CONFIRM=yes
    assert_status 0
    grep -q 'TODO(01)' "$COPY/lessons/01-fork/fork.c" || fail "lesson 01's starter was not restored"
    ! grep -q 'TODO(02)' "$COPY/lessons/02-hello-pool/hello-pool.c" || fail "reset L=01 touched lesson 02"
    ls "$COPY"/build/backups/*/01-fork/fork.c >/dev/null || fail "the learner's file was not kept"
}

@test "make reset-all restores every starter" {
    solve 01-fork
    solve 02-hello-pool
    in_copy -- make --no-print-directory reset-all CONFIRM=yes
    assert_status 0
    grep -q 'TODO(01)' "$COPY/lessons/01-fork/fork.c"
    grep -q 'TODO(02)' "$COPY/lessons/02-hello-pool/hello-pool.c"
}

@test "make solution waits until it is earned, or FORCE=1" {
    in_copy -- make --no-print-directory reset-all CONFIRM=yes
    in_copy -- make --no-print-directory solution L=01
    [ "$status" -ne 0 ] || fail "the solution opened before the lesson passed"
    assert_match 'opens once the lesson passes' "$output" "the refusal"
    in_copy -- make --no-print-directory solution L=01 FORCE=1
    assert_status 0
    assert_match '^\+.*_exit\(status\)' "$(grep -E '^\+' <<<"$output")" "the diff"
}

@test "make doctor checks the tools and exits 0 on a complete machine" {
    in_copy -- make --no-print-directory doctor
    assert_status 0
    assert_match 'ok +C compiler' "$output" "the compiler line"
    assert_match 'ok +bats' "$output" "the bats line"
}

@test "make report writes valid JSON and JUnit XML for every lesson" {
    in_copy -- make --no-print-directory report
    assert_status 0
    local json=$COPY/build/report.json xml=$COPY/build/report.xml
    [ -s "$json" ] && [ -s "$xml" ] || fail "report files missing"
    if command -v python3 >/dev/null; then
        python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert len(d["lessons"]) >= 2' "$json" ||
            fail "build/report.json is not the JSON expected:" "$(head -20 "$json")"
    fi
    if command -v xmllint >/dev/null; then
        xmllint --noout "$xml" || fail "build/report.xml is not well-formed XML"
    fi
    grep -q '<testsuite name="01-fork"' "$xml"
}

@test "make watch re-checks on save and quits on q" {
    local fifo=$BATS_TEST_TMPDIR/keys out=$BATS_TEST_TMPDIR/watch.out
    mkfifo "$fifo"
    FORKLINGS_WATCH_INTERVAL=0.2 timeout 100 env -C "$COPY" make --no-print-directory watch L=01 \
        <"$fifo" >"$out" 2>&1 3>&- &
    local pid=$! n
    exec 4>"$fifo"                  # keep the pipe open: no end of input yet
    wait_for() { # wait_for COUNT PATTERN: until PATTERN appears COUNT times
        for _ in $(seq 600); do
            n=$(grep -c "$2" "$out")
            [ "$n" -ge "$1" ] && return 0
            sleep 0.1
        done
        return 1
    }
    wait_for 1 'Checking lesson 01' || fail "watch did not check at start:" "$(cat "$out")"
    wait_for 1 'watching lessons/01' || fail "watch did not settle"
    echo '/* saved */' >>"$COPY/lessons/01-fork/fork.c"
    wait_for 2 'Checking lesson 01' || fail "watch did not re-check after a save:" "$(cat "$out")"
    wait_for 2 'watching lessons/01' || fail "watch did not settle after the re-check"
    echo q >&4
    exec 4>&-
    wait "$pid" || fail "watch exited with status $?:" "$(cat "$out")"
    grep -q bye "$out"
}

@test "a failure's reproduce line runs as printed from the top folder, its files kept" {
    in_copy -- make --no-print-directory check L=05
    [ "$status" -ne 0 ] || fail "make check passed the starter of lesson 05"
    local line
    line=$(sed -n 's/^ *to reproduce: *//p' <<<"$output" | head -1)
    [[ $line == *build/check/05/1/work/in-1-10.txt* ]] ||
        fail "expected the input file kept under build/check/05, the line is:" "$line" || return 1
    [ -s "$COPY/build/check/05/1/work/in-1-10.txt" ] || fail "the input file it names is not there"
    # The starter leaves no OUTPUT: the test said so, and the line shows it.
    in_copy -- bash -c "$line"
    assert_status 0
    [ ! -e "$COPY/build/check/05/1/work/out.txt" ] ||
        fail "the reproduce line made an OUTPUT the checked run did not"
    local made=("$COPY"/build/check/05/1/work/out.txt.*)
    [ -e "${made[0]}" ] ||
        fail "the reproduce line did not run the program on the kept files"
}

@test "a lesson that passed stays passed when a re-check of the same files fails; a change shows" {
    solve 01-fork
    in_copy -- make --no-print-directory check L=01
    assert_status 0
    # A re-check after a change to the tests, say, that fails on the same
    # files (as a flaky test would): the table still says passed, and why.
    local result=$COPY/build/results/lessons/01-fork.result
    sed -i '1s/.*/failed/' "$result"
    touch "$result"
    in_copy -- make --no-print-directory
    assert_match '01  fork +passed \(a re-check after a change to the tests failed: make check L=01\)' \
        "$output" "the table"
    assert_match 'next: lesson 02' "$output" "the next step"
    # A change to the learner's file that breaks it: not passed, and said so.
    sed -i 's/_exit(status);/exit(status);/' "$COPY/lessons/01-fork/fork.c"
    in_copy -- make --no-print-directory
    assert_match '01  fork +not passed \([0-9]+ of [0-9]+ tests; changed since it passed\)' \
        "$output" "the table"
}
