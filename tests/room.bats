#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# tools/room, the instructor's table of a room: made-up reports in
# tests/fixtures/reports (a room that starts at 03, a student who did
# nothing, a student with two reports, a file that is no report) merge into
# one row per student and one column per lesson, as text and as HTML.

# shellcheck disable=SC2154 # status, output, g_* are set by lib/harness
load lib/harness

FIXTURES=$FORKLINGS_ROOT/tests/fixtures/reports

setup_file() {
    make --no-print-directory -s -C "$FORKLINGS_ROOT" build/tests/guard
}

room() {
    run_guarded -- "$FORKLINGS_ROOT/tools/room" "$@"
}

@test "a row per student, a column per lesson, each cell the lesson's state" {
    room -o "$BATS_TEST_TMPDIR/room.html" "$FIXTURES"
    assert_status 0
    assert_match '^student +01 +02 +03 +04 +passed$' "${lines[0]}" "the heading"
    assert_match '^Ada Lovelace +n/a +n/a +pass +12/30 +1/2$' "$(grep '^Ada ' <<<"$output")" "Ada's row (the room starts at 03)"
    assert_match '^Bob "the builder" +- +- +- +- +0/4$' "$(grep '^Bob ' <<<"$output")" "Bob's row (nothing attempted)"
    [ "$(grep -c '^[A-Z]' <<<"$output")" = 3 ] || fail "expected 3 students' rows:" "$output"
}

@test "of two reports of one student, the later one counts" {
    room -o "$BATS_TEST_TMPDIR/room.html" "$FIXTURES"
    assert_match '^Cy <Young> +pass +pass +20/31 +no build +2/4$' "$(grep '^Cy ' <<<"$output")" "Cy's later report"
}

@test "a lesson that does not compile is 'no build', not 0 of 1 tests" {
    room -o "$BATS_TEST_TMPDIR/room.html" "$FIXTURES"
    assert_status 0
    assert_match 'no build: does not compile' "$output" "the legend"
    grep -q '<td class="fail">no build</td>' "$BATS_TEST_TMPDIR/room.html" || fail "Cy's 04 in the HTML:" "$(cat "$BATS_TEST_TMPDIR/room.html")"
}

@test "a file that is not a report is named and left out" {
    room -o "$BATS_TEST_TMPDIR/room.html" "$FIXTURES"
    assert_status 0
    assert_match 'forklings-junk\.json: not a forklings report, left out' "$stderr" "the note"
}

@test "the HTML table has the same rows, its names escaped" {
    local html=$BATS_TEST_TMPDIR/room.html
    room -o "$html" "$FIXTURES"
    assert_match "room table: $html" "$output" "where it wrote"
    [ "$(grep -c '^<tr><th>' "$html")" = 3 ] || fail "expected 3 rows:" "$(cat "$html")"
    grep -q '<tr><th>Cy &lt;Young&gt;</th><td class="pass">pass</td>' "$html" || fail "Cy's row, escaped:" "$(cat "$html")"
    grep -q '<th>Bob &quot;the builder&quot;</th>' "$html" || fail "Bob's name, escaped"
    if command -v xmllint >/dev/null; then
        xmllint --html --noout "$html" || fail "the HTML does not parse"
    fi
}

@test "bad arguments: one line on stderr naming room, status 2; -h is usage" {
    room
    assert_status 2
    [ "${#stderr_lines[@]}" = 1 ] && [[ $stderr == "room: "* ]] || fail "expected one line 'room: ...', got:" "$stderr"
    room -x "$FIXTURES"
    assert_status 2
    room "$BATS_TEST_TMPDIR/nowhere"
    assert_status 2
    [[ $stderr == "room: no folder"* ]] || fail "expected 'room: no folder ...', got:" "$stderr"
    room "$BATS_TEST_TMPDIR"
    assert_status 2
    [[ $stderr == "room: no reports"* ]] || fail "expected 'room: no reports ...', got:" "$stderr"
    room -h
    assert_status 0
    assert_match '^usage: tools/room' "$output" "the usage"
}

@test "make room DIR=... is the same table, and writes the HTML into DIR" {
    local dir=$BATS_TEST_TMPDIR/reports
    mkdir "$dir"
    cp "$FIXTURES"/*.json "$dir"/
    run_guarded -- make --no-print-directory -s -C "$FORKLINGS_ROOT" room "DIR=$dir"
    assert_status 0
    assert_match '^Ada Lovelace +n/a +n/a +pass +12/30 +1/2$' "$(grep '^Ada ' <<<"$output")" "Ada's row"
    assert_match "room table: $dir/room.html" "$output" "where the HTML went"
    [ -s "$dir/room.html" ] || fail "no $dir/room.html"
}
