#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The learner's tools: `make trace` draws a pool run as text and as an SVG
# timeline that is well-formed XML and renders in a browser, and draws
# nothing of a run that failed.

# shellcheck disable=SC2154 # status, output, g_* are set by lib/harness
load lib/harness

setup_file() {
    make --no-print-directory -s -C "$FORKLINGS_ROOT" build/tests/guard build/tools/trace \
        WERROR=1 build/solutions/02-hello-pool/hello-pool
}

# trace_02 ARGS...: trace lesson 02's solution; leaves the trace, the SVG
# and the drawer's text output in BATS_TEST_TMPDIR.
trace_02() {
    local t=$BATS_TEST_TMPDIR/run.trace
    rm -f "$t"
    run_guarded -- env POOL_TRACE="$t" "$FORKLINGS_ROOT/build/solutions/02-hello-pool/hello-pool" "$@"
    assert_status 0
    run_guarded -- "$FORKLINGS_ROOT/build/tools/trace" -o "$BATS_TEST_TMPDIR/run.svg" "$t"
    assert_status 0
}

@test "lesson 02 records one line per task and one wait of the parent" {
    trace_02 -j 3 -n 12 -d 5
    local t=$BATS_TEST_TMPDIR/run.trace
    [ "$(grep -c '^task ' "$t")" = 12 ] || fail "expected 12 task lines:" "$(cat "$t")"
    [ "$(grep -c '^wait ' "$t")" = 1 ] || fail "expected 1 wait line:" "$(cat "$t")"
    [ "$(awk '/^task/ { print $2 }' "$t" | sort -n | tr '\n' ' ')" = "0 1 2 3 4 5 6 7 8 9 10 11 " ] ||
        fail "tasks 0 to 11 should each appear once"
    [ "$(awk '/^task/ { print $4 }' "$t" | sort -u | wc -l)" = 3 ] || fail "expected 3 worker pids"
}

@test "the text timeline has a lane per worker and the parent, each task once" {
    trace_02 -j 3 -n 12 -d 5
    [ "$(grep -c '^worker ' <<<"$output")" = 3 ] || fail "expected 3 worker lanes:" "$output"
    grep -q '^parent ' <<<"$output" || fail "no parent lane:" "$output"
    local n
    for n in 0 1 2 3 4 5 6 7 8 9 10 11; do
        [ "$(grep -oE "\[${n}[]=]" <<<"$output" | wc -l)" = 1 ] ||
            fail "task $n is not drawn exactly once:" "$output"
    done
    assert_match 'picture: .*run\.svg' "$output" "the last line"
}

@test "the SVG timeline is well-formed XML with a box per task and an axis" {
    trace_02 -j 4 -n 20 -d 2
    local svg=$BATS_TEST_TMPDIR/run.svg
    if command -v xmllint >/dev/null; then
        xmllint --noout "$svg" || fail "not well-formed XML"
    elif command -v python3 >/dev/null; then
        python3 -c 'import sys, xml.dom.minidom as m; m.parse(sys.argv[1])' "$svg" || fail "not well-formed XML"
    else
        skip "neither xmllint nor python3 to check the XML"
    fi
    [ "$(grep -c '<title>task ' "$svg")" = 20 ] || fail "expected 20 task boxes"
    grep -q 'time since the first task started (ms)' "$svg" || fail "no axis label"
    [ "$(grep -c '<line ' "$svg")" -ge 2 ] || fail "expected axis ticks"
}

@test "the SVG renders in headless Chromium, where it is installed" {
    local chromium
    chromium=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
    [ -n "$chromium" ] || skip "Chromium is not installed (Debian: apt-get install chromium)"
    trace_02 -j 4 -n 20 -d 2
    local png=$BATS_TEST_TMPDIR/run.png
    run_guarded --cap 200 --deadline 60 --tolerate unreaped --tolerate survivors -- \
        "$chromium" --headless --no-sandbox --disable-gpu \
        --disable-background-networking --disable-component-update --disable-sync \
        --no-first-run --user-data-dir="$BATS_TEST_TMPDIR/profile" \
        --window-size=1000,400 --screenshot="$png" "file://$BATS_TEST_TMPDIR/run.svg"
    [ -s "$png" ] || fail "Chromium wrote no screenshot:" "$stderr"
    # A blank page compresses to almost nothing; a drawn timeline does not.
    [ "$(wc -c <"$png")" -gt 8000 ] || fail "the screenshot is nearly empty ($(wc -c <"$png") bytes)"
}

@test "make trace runs a lesson's program and draws it" {
    run_guarded --cap 200 --deadline 60 -- make --no-print-directory -C "$FORKLINGS_ROOT" \
        trace L=02 TREE=solutions
    assert_status 0
    [ "$(grep -c '^worker ' <<<"$output")" = 4 ] || fail "expected 4 worker lanes:" "$output"
    [ -s "$FORKLINGS_ROOT/build/trace/02-hello-pool.svg" ]
}

@test "make trace draws the capstone's run, each replaced worker in a lane of its own" {
    # Its default ARGS, -j 3 -c 4 -d 30 -m 2 -n 36: 9 chunks, at most 2 per
    # worker process, so at least 5 processes ran them.
    run_guarded --cap 200 --deadline 60 -- make --no-print-directory -C "$FORKLINGS_ROOT" \
        trace L=08 TREE=solutions
    assert_status 0
    [ "$(grep -c '^worker ' <<<"$output")" -ge 5 ] ||
        fail "expected at least 5 worker lanes (-m 2, 9 chunks):" "$output"
    grep -q '^parent ' <<<"$output" || fail "no parent lane:" "$output"
    [ -s "$FORKLINGS_ROOT/build/trace/08-pool.svg" ] || fail "no build/trace/08-pool.svg"
    # The heading counts tasks, not the parent's many waits.
    local tasks
    tasks=$(grep -c '^task ' "$FORKLINGS_ROOT/build/trace/08-pool.trace")
    grep -q ">$tasks tasks, " "$FORKLINGS_ROOT/build/trace/08-pool.svg" ||
        fail "the SVG heading should say $tasks tasks:" \
            "$(grep -o '>[0-9]* tasks, [^<]*' "$FORKLINGS_ROOT/build/trace/08-pool.svg")"
}

@test "make trace with no ARGS draws lesson 03 with its telling defaults" {
    run_guarded --cap 200 --deadline 60 -- make --no-print-directory -C "$FORKLINGS_ROOT" \
        trace L=03 TREE=solutions
    assert_status 0
    [ "$(grep -c '^worker ' <<<"$output")" = 4 ] || fail "expected 4 worker lanes (-j 4):" "$output"
    grep -q '^parent ' <<<"$output" || fail "no parent lane:" "$output"
}

@test "make trace of a program that fails says it drew nothing and exits non-zero" {
    rm -f "$FORKLINGS_ROOT/build/trace/02-hello-pool.svg"
    run_guarded --cap 200 --deadline 60 -- make --no-print-directory -C "$FORKLINGS_ROOT" \
        trace L=02 TREE=solutions ARGS='-j 0'
    [ "$status" -ne 0 ] || fail "make trace exited 0 for a program that failed:" "$output" "$stderr"
    assert_match 'exited with status 2: nothing drawn' "$stderr" "the message"
    [ ! -e "$FORKLINGS_ROOT/build/trace/02-hello-pool.svg" ] || fail "a picture was drawn of a failed run"
    [[ $output != *"picture:"* ]] || fail "make trace drew a picture:" "$output"
}

@test "trace rejects bad arguments with one line and status 2" {
    run_guarded -- "$FORKLINGS_ROOT/build/tools/trace"
    assert_status 2
    [[ $stderr == "trace: "* ]] || fail "expected 'trace: ...' on stderr, got: $stderr"
    run_guarded -- "$FORKLINGS_ROOT/build/tools/trace" -w 5 x
    assert_status 2
}

@test "make bench runs every case, short, and writes the tables and both charts" {
    rm -f "$FORKLINGS_ROOT/build/bench/results.md" "$FORKLINGS_ROOT/build/bench/results.svg" \
        "$FORKLINGS_ROOT/build/bench/scaling.svg"
    run_guarded --cap 300 --deadline 240 -- env BENCH_QUICK=1 BENCH_REPS=1 \
        make --no-print-directory -C "$FORKLINGS_ROOT" bench
    assert_status 0
    local md=$FORKLINGS_ROOT/build/bench/results.md svg=$FORKLINGS_ROOT/build/bench/results.svg what
    local scaling=$FORKLINGS_ROOT/build/bench/scaling.svg
    for what in "per-task overhead" "the floor" "throughput" "CPU work, one process" \
        "CPU work, 1 worker" "the seed's hello program" "shared map, workers started" \
        "shared map with its forks" "false sharing: 2 counters on one cache line" \
        "2 counters 128 bytes apart"; do
        grep -q "^| $what" "$md" || fail "no row for '$what' in results.md:" "$(cat "$md")"
    done
    # The sections after the cases, each under its heading.
    for what in "Per-task overhead against depth K" "How the time grows" \
        "The shared-memory map of lesson 09"; do
        grep -q "^$what" "$md" || fail "no section '$what' in results.md:" "$(cat "$md")"
    done
    if command -v python3 >/dev/null; then
        grep -qE '^\| per-task overhead .*\| [0-9.]+x \|' "$md" || fail "no Python / C ratio:" "$(cat "$md")"
    fi
    [ -s "$scaling" ] || fail "make bench wrote no build/bench/scaling.svg"
    if command -v xmllint >/dev/null; then
        xmllint --noout "$svg" || fail "results.svg is not well-formed XML"
        xmllint --noout "$scaling" || fail "scaling.svg is not well-formed XML"
    else
        note "xmllint is not installed: results.svg and scaling.svg are not checked as XML"
    fi
    [ "$(grep -c '<rect x="380"' "$svg")" -ge 7 ] || fail "expected a bar per case in results.svg"
    # One verdict per target, from the medians; lesson 09's two by name.
    local verdict='(n/a \(no python3\)|[0-9.]+ \(target [<>]= [0-9.]+\): (met|MISSED))$'
    [ "$(grep -cE "^- .*: $verdict" "$md")" = 7 ] ||
        fail "expected 7 target lines (met, MISSED or n/a) in results.md:" "$(cat "$md")"
    grep -qE "^- shared map / plain loop, C: [0-9.]+ \(target <= 1\): (met|MISSED)$" "$md" ||
        fail "no target line for the shared map against the plain loop:" "$(cat "$md")"
    grep -qE "^- Pool.map / shared map: $verdict" "$md" ||
        fail "no target line for Pool.map against the shared map:" "$(cat "$md")"
    # Progress as it goes, a line a case, on stderr; the tree it times.
    local step
    for step in 1 2 3 4 5 6; do
        grep -q "^bench: \[$step/6\] " <<<"$stderr" || fail "no progress line [$step/6] on stderr:" "$stderr"
    done
    assert_match 'the capstone pool of solutions/08-pool' "$output" "the bench's first line"
}

@test "the shared-memory bench cases end, and check every result, at any size and worker count" {
    make --no-print-directory -s -C "$FORKLINGS_ROOT" build/tools/bench/shared
    local shared=$FORKLINGS_ROOT/build/tools/bench/shared n w c
    # 0 items, fewer items than workers, one chunk, many: the warm case's
    # workers wait to be released, so a release that never comes would hang.
    for c in map map-cold; do
        for n in 0 1 3 1000 100003; do
            for w in 1 2 7; do
                run_guarded --deadline 20 -- "$shared" "$c" "$n" "$w"
                assert_status 0
                assert_match "^$c [0-9]+\.[0-9]{6}\$" "$output" "shared $c $n $w"
            done
        done
    done
    run_guarded --deadline 20 -- "$shared" loop 0
    assert_status 0
    run_guarded --deadline 20 -- "$shared" map 10 0
    assert_status 2
}

@test "make bench TREE=lessons times the learner's own capstone; the starter's, which cannot map, in one line" {
    # The starter's engine is the learner's to write: every map fails, so
    # the bench says so at once instead of timing failures.
    run_guarded --cap 300 --deadline 120 -- env BENCH_QUICK=1 BENCH_REPS=1 \
        make --no-print-directory -C "$FORKLINGS_ROOT" bench TREE=lessons
    [ "$status" -ne 0 ] || fail "make bench of the starter's capstone exited 0:" "$output"
    [ -x "$FORKLINGS_ROOT/build/tools/lessons/bench" ] || fail "no build/tools/lessons/bench was built"
    assert_match 'the capstone pool of lessons/08-pool' "$output" "the bench's first line"
    assert_match '^bench: the capstone pool of lessons/08-pool cannot map: .*stub.*; make check L=08 first$' \
        "$(grep '^bench: ' <<<"$stderr" | head -1)" "the one line that says why"
    [[ $stderr != *"[1/6]"* ]] || fail "the bench timed cases of a capstone that cannot map:" "$stderr"
}
