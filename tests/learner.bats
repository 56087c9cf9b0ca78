#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The learner's commands (make, start, check, run, hint, watch, reset,
# solution, doctor, preflight, report, handout, and tools/room), each tried in a fresh copy of the repository, as a
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

@test "make check of a lesson that does not compile shows the compiler's error and says so, no bats noise" {
    echo 'this is not C' >>"$COPY/lessons/01-fork/fork.c"
    in_copy -- make --no-print-directory check L=01
    git -C "$COPY" checkout -q -- lessons/01-fork
    [ "$status" -ne 0 ] || fail "make check passed a lesson that does not compile"
    assert_match 'fork\.c:[0-9]+:[0-9]+: error' "$output" "the compiler's message"
    assert_match '✗ the program compiles without warnings' "$output" "the failed check"
    assert_match 'lesson 01 fork: does not compile yet \(its [0-9]+ tests run once it does\)' "$output" "the verdict"
    [[ $output != *"bats warning"* ]] || fail "bats' own warning reached the learner:" "$output"
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
    ls "$COPY"/.forklings/backups/*/01-fork/fork.c >/dev/null || fail "the learner's file was not kept"
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

@test "make doctor checks the tools and exits 0 on a machine with bats" {
    in_copy -- make --no-print-directory doctor
    assert_status 0
    assert_match 'ok +C compiler' "$output" "the compiler line"
    assert_match 'ok +bats' "$output" "the bats line"
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
    # That the program ran, with the test's variables: its descriptor
    # report (FORKLINGS_FD_REPORT, a path the line names) is written anew.
    [[ $line == *FORKLINGS_FD_REPORT=build/check/05/1/fds* ]] ||
        fail "expected the test's FORKLINGS_FD_REPORT in the line:" "$line" || return 1
    rm -f "$COPY/build/check/05/1/fds"
    in_copy -- bash -c "$line"
    assert_status 0
    [ ! -e "$COPY/build/check/05/1/work/out.txt" ] ||
        fail "the reproduce line made an OUTPUT the checked run did not"
    [ -s "$COPY/build/check/05/1/fds" ] ||
        fail "the reproduce line did not run the program with the test's variables"
}

@test "a lesson passed out of order names the lesson after it as the next, not the first one open" {
    solve 02-hello-pool
    in_copy -- make --no-print-directory check L=02
    [ "$status" = 0 ] || fail "lesson 02 solved does not pass:" "$output"
    assert_match 'next: lesson 0[3-9]' "$output" "the next step, after 02 (01 is not passed)"
    in_copy -- make --no-print-directory check L=01 TREE=solutions
    assert_status 0
    ! [[ $output == *"next: lesson"* ]] || fail "a check of the reference names a next lesson:" "$output"
    # The tests after this one share the copy: 02 back as it was, unchecked.
    git -C "$COPY" checkout -q -- lessons/02-hello-pool
    rm -f "$COPY"/build/results/lessons/02-hello-pool.*
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

# The tests below start from the starters as committed, every lesson in
# the course: fresh puts the copy back so (with the copy's own git, not the
# repository's).
fresh() {
    git -C "$COPY" checkout -q -- lessons tests
    rm -f "$COPY/.forklings-start"
}

# json_get FILE EXPR: print the Python expression EXPR of the JSON in FILE
# (as d).
json_get() {
    python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

@test "make report names the student, the commit, the files' hash, OS and compiler; says where it wrote" {
    fresh
    command -v python3 >/dev/null || skip "python3 is not installed: this test reads the JSON with it"
    solve 01-fork
    echo '/* begun */' >>"$COPY/lessons/05-with/with.c"
    in_copy -- make --no-print-directory report "STUDENT=Ada Lovelace"
    git -C "$COPY" checkout -q -- lessons/05-with
    assert_status 0
    local json=$COPY/reports/forklings-ada-lovelace.json xml=$COPY/reports/forklings-ada-lovelace.xml
    assert_match 'written to: reports/forklings-ada-lovelace\.json reports/forklings-ada-lovelace\.xml' "$output" "where it wrote"
    local step
    for step in 1 2 3; do
        assert_match "report: \[$step/3\] " "$stderr" "a progress line for each lesson"
    done
    [ "$(json_get "$json" 'd["student"]')" = "Ada Lovelace" ] || fail "no student in the JSON:" "$(head -5 "$json")"
    [ "$(json_get "$json" 'd["commit"]')" = "$(git -C "$COPY" rev-parse HEAD)" ] || fail "the commit is not HEAD's"
    assert_match '^[0-9a-f]{64}$' "$(json_get "$json" 'd["files_sha256"]')" "the files' hash"
    assert_match "^$(uname -s) " "$(json_get "$json" 'd["os"]')" "the OS"
    assert_match 'cc: .+' "$(json_get "$json" 'd["compiler"]')" "the compiler"
    # passed, failed (begun), not attempted (the untouched starter)
    [ "$(json_get "$json" '[l["state"] for l in d["lessons"]]')" = "['passed', 'not attempted', 'failed']" ] ||
        fail "expected 01 passed, 02 not attempted, 05 failed:" "$(json_get "$json" '[(l["lesson"], l["state"]) for l in d["lessons"]]')"
    local msg
    msg=$(json_get "$json" '[t["message"] for t in d["lessons"][1]["tests"] if t["state"] == "failed"][0]')
    assert_match 'the parent forked none' "$msg" "the failure's message in the JSON"
    [ "$(json_get "$json" 'd["lessons"][1]["not_run"] + d["lessons"][1]["failed"] == d["lessons"][1]["total"]')" = True ] ||
        fail "a starter's tests are failed or not run, none passed"
    # JUnit: well-formed, times, a timestamp, skipped elements, real messages
    if command -v xmllint >/dev/null; then
        xmllint --noout "$xml" || fail "the JUnit report is not well-formed XML"
    fi
    grep -q '<testsuite name="01-fork" tests="[0-9]*" failures="0" errors="0" skipped="0" time="[0-9.]*" timestamp="20' "$xml" ||
        fail "no time and timestamp on the suite:" "$(grep '<testsuite ' "$xml")"
    grep -q '<skipped message="not run: an earlier test failed"/>' "$xml" || fail "no skipped element"
    # the untouched starter fails nothing: its tests are skipped, each with
    # the message it would fail with; the begun lesson fails
    grep -q '<testsuite name="02-hello-pool" tests="\([0-9]*\)" failures="0" errors="0" skipped="\1" ' "$xml" ||
        fail "the untouched 02 is not all skipped:" "$(grep '<testsuite ' "$xml")"
    grep -q '<skipped message="not attempted (the starter as given): expected greetings from the workers, but the parent forked none' "$xml" ||
        fail "the untouched starter's message is not in the XML"
    grep -q '<testsuite name="05-with" tests="[0-9]*" failures="[1-9]' "$xml" ||
        fail "the begun 05 has no failure:" "$(grep '<testsuite ' "$xml")"
    grep -q '<failure message="[^"]' "$xml" || fail "no failure element with a message"
    ! grep -q 'message="test failed"' "$xml" || fail "a failure says only 'test failed'"
    # make's table agrees with the report: the untouched starter is not
    # attempted, not failed
    in_copy -- make --no-print-directory
    assert_match '02  hello-pool +not attempted \(the starter as given\)' "$output" "the table, for an untouched lesson"
    # make clean keeps the reports
    in_copy -- make --no-print-directory clean
    [ -s "$json" ] || fail "make clean deleted the report"
}

@test "make report FORMAT=gradescope writes Gradescope's results.json; bad FORMAT is refused" {
    fresh
    command -v python3 >/dev/null || skip "python3 is not installed: this test reads the JSON with it"
    local out=$BATS_TEST_TMPDIR/gs
    solve 01-fork
    in_copy -- make --no-print-directory report FORMAT=gradescope "REPORT_DIR=$out" STUDENT=bob
    assert_status 0
    [ "$(json_get "$out/results.json" '[(t["name"], t["score"], t["max_score"], t["status"]) for t in d["tests"]]')" = \
        "[('01-fork', 1, 1, 'passed'), ('02-hello-pool', 0, 1, 'failed'), ('05-with', 0, 1, 'failed')]" ] ||
        fail "not the tests expected:" "$(cat "$out/results.json")"
    assert_match 'not attempted: 0 of [0-9]+ tests passed' "$(json_get "$out/results.json" 'd["tests"][1]["output"]')" "the output"
    [ "$(json_get "$out/results.json" 'd["score"]')" = 1 ] || fail "the score is not 1"
    in_copy -- make --no-print-directory report FORMAT=csv
    assert_status 2
    [ "$(grep -c . <<<"$stderr")" -le 2 ] && [[ $stderr == "learn: FORMAT must be"* ]] ||
        fail "expected one line from learn on stderr, got:" "$stderr"
}

@test "a failure message with backslashes and quotes stays valid JSON, in the report and in Gradescope's results.json" {
    fresh
    command -v python3 >/dev/null || skip "python3 is not installed: this test reads the JSON with it"
    solve 01-fork
    # A reproduce line quotes arguments with backslashes (-F 2\,3).
    printf '\n@%s "a message with a backslash" {\n    fail %s\n}\n' test "'to reproduce:  prog -F 2\\,3 \"x\" | cat'" \
        >>"$COPY/tests/01-fork.bats"
    local out=$BATS_TEST_TMPDIR/bs
    in_copy -- make --no-print-directory report STUDENT=di "REPORT_DIR=$out"
    in_copy -- make --no-print-directory report STUDENT=di FORMAT=gradescope "REPORT_DIR=$out"
    git -C "$COPY" checkout -q -- tests/01-fork.bats
    local msg
    msg=$(json_get "$out/forklings-di.json" '[t["message"] for t in d["lessons"][0]["tests"] if t["state"] == "failed"][0]') ||
        fail "the report is not valid JSON:" "$(grep -n 'backslash' "$out/forklings-di.json")"
    [ "$msg" = 'to reproduce:  prog -F 2\,3 "x" | cat' ] || fail "the message came out changed:" "$msg"
    json_get "$out/results.json" 'd["tests"][0]["output"]' >/dev/null ||
        fail "Gradescope's results.json is not valid JSON:" "$(cat "$out/results.json")"
}

@test "a skipped test is named as a guarantee this machine lacks, and never counted as passed" {
    fresh
    solve 01-fork
    # (the @ apart: bats would take a test written here for one of its own)
    printf '\n@%s "needs a tool this machine lacks" {\n    skip "frobnicate is not installed"\n}\n' test \
        >>"$COPY/tests/01-fork.bats"
    in_copy -- make --no-print-directory check L=01
    local check=$output
    in_copy -- make --no-print-directory
    local table=$output
    in_copy -- make --no-print-directory report STUDENT=cy
    git -C "$COPY" checkout -q -- tests/01-fork.bats
    assert_match 'This machine checks less' "$check" "the check's output"
    assert_match 'skipped \(1 test, not counted as passed\): frobnicate is not installed' "$check" "the guarantee named"
    assert_match 'lesson 01 fork: passed.*\(14 of 15 tests; 1 skipped on this machine, not counted\)' "$check" "the verdict"
    assert_match '01  fork +passed \(14 of 15 tests; 1 skipped on this machine\)' "$table" "the table"
    grep -q '{"lesson": "01-fork", "state": "passed", "compiles": true, "passed": 14, "failed": 0, "skipped": 1, ' \
        "$COPY/reports/forklings-cy.json" || fail "the report counts the skip as passed:" "$(grep '"lesson": "01' "$COPY/reports/forklings-cy.json")"
    grep -q '"state": "skipped", "time": [0-9.]*, "reason": "frobnicate is not installed"' "$COPY/reports/forklings-cy.json" ||
        fail "the skipped test has no reason in the report"
    grep -q '<skipped message="frobnicate is not installed"/>' "$COPY/reports/forklings-cy.xml" ||
        fail "no skipped element with its reason in the JUnit report"
}

@test "make start L=02: lesson 01 is not part of the course in make, check, next and the report, and stays so" {
    fresh
    in_copy -- make --no-print-directory start L=02
    assert_status 0
    assert_match 'next: lesson 02 hello-pool' "$output" "the next step"
    in_copy -- make --no-print-directory clean
    in_copy -- make --no-print-directory
    assert_match '01  fork +not part of this course \(the room starts at lesson 02\)' "$output" "the table after make clean"
    assert_match 'next: lesson 02 hello-pool' "$output" "the next step"
    in_copy -- make --no-print-directory check
    assert_match 'Checking lesson 02 hello-pool' "$output" "make check with no lesson"
    in_copy -- make --no-print-directory report STUDENT=dee
    grep -q '{"lesson": "01-fork", "state": "not in course"' "$COPY/reports/forklings-dee.json" ||
        fail "the report does not mark lesson 01 not in course:" "$(grep '"lesson"' "$COPY/reports/forklings-dee.json")"
    assert_match 'report: \[1/3\] 01-fork: not part of this course' "$stderr" "the progress line"
    in_copy -- make --no-print-directory start L=zz
    assert_status 2
    [[ $stderr == "learn: no lesson 'zz'"* ]] || fail "expected learn's one line, got:" "$stderr"
    in_copy -- make --no-print-directory start
    assert_status 0
    [ ! -e "$COPY/.forklings-start" ] || fail "make start did not reset the start"
    in_copy -- make --no-print-directory
    assert_match '01  fork +not yet checked' "$output" "the table after the reset"
}

@test "make handout: a copy without solutions/ and mutants, its own git repository, whose report tells an untouched starter" {
    fresh
    local out=$BATS_TEST_TMPDIR/handout
    in_copy -- make --no-print-directory handout "DIR=$out"
    assert_status 0
    assert_match "handout: $out " "$output" "where it wrote"
    [ -d "$out/lessons/01-fork" ] && [ -f "$out/tests/01-fork.bats" ] || fail "the handout has no lessons or suites"
    [ ! -e "$out/solutions" ] && [ ! -e "$out/tests/mutants" ] || fail "the handout still has solutions/ or tests/mutants/"
    [ -z "$(git -C "$out" log --all --format=%H -- solutions)" ] || fail "the handout's history holds the solutions"
    run_guarded --cap 400 --deadline 120 -- env -C "$out" TERM=dumb make --no-print-directory report STUDENT=eve FORMAT=json
    assert_status 0
    grep -q '{"lesson": "01-fork", "state": "not attempted"' "$out/reports/forklings-eve.json" ||
        fail "an untouched starter of the handout is not 'not attempted':" "$(grep '"lesson"' "$out/reports/forklings-eve.json")"
    run_guarded -- env -C "$out" TERM=dumb make --no-print-directory solution L=01
    assert_status 2
    assert_match 'This copy has no solutions/01-fork' "$output" "make solution in the handout, before any gate"
    in_copy -- make --no-print-directory handout "DIR=$out"
    assert_status 2
    assert_match 'exists and is not empty' "$stderr" "a second handout into the same folder"
    # UPTO=01: lesson 02 gives 01's finished code, so it is left out
    in_copy -- make --no-print-directory handout "DIR=$out.01" UPTO=01
    assert_status 0
    [ -d "$out.01/lessons/01-fork" ] && [ ! -e "$out.01/lessons/02-hello-pool" ] && [ ! -e "$out.01/tests/02-hello-pool.bats" ] ||
        fail "UPTO=01 kept a later lesson or lost lesson 01:" "$(ls "$out.01/lessons" "$out.01/tests")"
    # its README links lesson 01 and names the others without a link
    grep -q '| 01 | \[fork\](lessons/01-fork/README.md) |' "$out.01/README.md" &&
        grep -q '| 02 | hello-pool (not in this handout) |' "$out.01/README.md" &&
        ! grep -q '](lessons/0[2-9]' "$out.01/README.md" ||
        fail "the handout's README does not link exactly the lessons it has:" "$(grep '^| 0' "$out.01/README.md")"
    # no capstone to time, and a course's LAST past the copy's end
    run_guarded -- env -C "$out.01" TERM=dumb make --no-print-directory bench
    [ "$status" -ne 0 ] || fail "make bench without lesson 08 exited 0"
    assert_match '^bench: this copy has no lessons/08-pool' "$stderr" "the one line of make bench"
    run_guarded -- env -C "$out.01" TERM=dumb make --no-print-directory start LAST=08
    assert_status 0
    assert_match 'this copy ends at lesson 01-fork, before LAST=08' "$output" "make start LAST past the copy's end"
}

@test "make start L=02 LAST=02: lessons after the last are not part of the course either; make start resets it" {
    fresh
    in_copy -- make --no-print-directory start L=02 LAST=02
    assert_status 0
    assert_match 'This course is lessons 02-hello-pool to 02-hello-pool' "$output" "what start says"
    in_copy -- make --no-print-directory
    assert_match '05  with +not part of this course \(the course ends at lesson 02\)' "$output" "the table, after the last lesson"
    assert_match '01  fork +not part of this course \(the room starts at lesson 02\)' "$output" "the table, before the first"
    in_copy -- make --no-print-directory report STUDENT=fay FORMAT=json
    grep -q '{"lesson": "05-with", "state": "not in course"' "$COPY/reports/forklings-fay.json" ||
        fail "the report does not leave 05 out:" "$(grep '"lesson"' "$COPY/reports/forklings-fay.json")"
    grep -q '^  "start": "02-hello-pool",$' "$COPY/reports/forklings-fay.json" &&
        grep -q '^  "last": "02-hello-pool",$' "$COPY/reports/forklings-fay.json" ||
        fail "the report does not name the course's first and last lesson:" "$(head -14 "$COPY/reports/forklings-fay.json")"
    in_copy -- make --no-print-directory start L=05 LAST=02
    assert_status 2
    in_copy -- make --no-print-directory start
    in_copy -- make --no-print-directory
    assert_match '05  with +not yet checked|05  with +not attempted' "$output" "the table after the reset"
}

@test "three made-up students' reports merge into one room table" {
    fresh
    local dir=$BATS_TEST_TMPDIR/room who
    for who in ann ben cat; do
        # ben's lesson 05 does not compile
        [ $who != ben ] || echo 'this is not C' >>"$COPY/lessons/05-with/with.c"
        in_copy -- make --no-print-directory report "STUDENT=$who" "REPORT_DIR=$dir" FORMAT=json
        git -C "$COPY" checkout -q -- lessons/05-with
        assert_status 0
    done
    grep -q '{"lesson": "05-with", "state": "failed", "compiles": false' "$dir/forklings-ben.json" ||
        fail "ben's report does not say 05 does not compile:" "$(grep '"lesson"' "$dir/forklings-ben.json")"
    grep -q '"message": "lessons/05-with does not compile (warnings count as errors):\\n.*error' "$dir/forklings-ben.json" ||
        fail "ben's report does not give the compiler's message:" "$(grep -A2 '"lesson": "05' "$dir/forklings-ben.json")"
    in_copy -- tools/room "$dir"
    assert_status 0
    for who in ann ben cat; do
        assert_match "^$who +" "$(grep "^$who " <<<"$output")" "a row for $who"
    done
    assert_match '^ben +.* no build +' "$(grep '^ben ' <<<"$output")" "ben's 05 that does not compile"
    assert_match '^student +01 +02 +05 +passed$' "$(head -1 <<<"$output")" "a column a lesson"
    [ -s "$dir/room.html" ] || fail "no room.html"
}

@test "make doctor and preflight without bats: not ready, bats named; without valgrind or python3: each guarantee named" {
    fresh
    local farm=$BATS_TEST_TMPDIR/bin t
    mkdir "$farm"
    for t in /usr/bin/* /bin/*; do
        case ${t##*/} in bats | npm | npx | node | valgrind | python3 | python3.*) continue ;; esac
        [ -e "$farm/${t##*/}" ] || ln -s "$t" "$farm/${t##*/}"
    done
    in_copy -- env -u BATS_ROOT PATH="$farm" make --no-print-directory doctor
    [ "$status" -ne 0 ] || fail "doctor exited 0 with no bats"
    [[ $output != *"All set"* ]] || fail "doctor says All set with no bats:" "$output"
    assert_match 'missing +bats-core' "$output" "the bats line"
    assert_match 'less +no valgrind' "$output" "the valgrind guarantee"
    assert_match 'less +no python3 twin' "$output" "the python3 guarantee"
    in_copy -- env -u BATS_ROOT PATH="$farm" make --no-print-directory preflight
    [ "$status" -ne 0 ] || fail "preflight exited 0 with no bats"
    assert_match '^forklings preflight: .* \| NOT READY: missing bats$' "$(tail -1 <<<"$output")" "the last line"
    # bats back, valgrind and python3 still absent: all set, but it says so
    ln -s "$(command -v bats)" "$farm/bats"
    in_copy -- env -u BATS_ROOT PATH="$farm" make --no-print-directory doctor
    assert_status 0
    assert_match 'All set: run make\. This machine checks less \(2 guarantee\(s\) above, marked less\)' "$output" "the verdict"
}

@test "make preflight checks a reference solution and ends with one line: ready" {
    fresh
    in_copy -- make --no-print-directory preflight
    assert_status 0
    assert_match 'solutions/01-fork builds and passes its checks' "$output" "the reference check"
    assert_match '^forklings preflight: [A-Za-z]+ .* \| .* \| bats [0-9.]+ \| optional: valgrind (yes|no), python3 (yes|no), objdump (yes|no) \| checks less: .* \| ready$' \
        "$(tail -1 <<<"$output")" "the last line"
}
