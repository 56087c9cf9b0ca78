#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The documentation is tested: every relative link resolves; code a README
# quotes from a lesson (behind a `<!-- quote: FILE -->` line) is in that
# file; every command a README or guide shows (`$ ...` in a code block) runs
# as shown: it prints the output lines shown (numbers may differ), or, when
# it shows none, it succeeds;
# each Python twin under docs/python/ prints the same lines as its C
# solution (as a multiset where the order is not promised).

# shellcheck disable=SC2154,SC2030,SC2031 # status, output, lines, g_* are set by lib/harness
load lib/harness

COPY=$BATS_FILE_TMPDIR/repo

# A copy of the working tree whose lessons are solved, so that the commands
# the READMEs show print what they show.
setup_file() {
    make --no-print-directory -s -C "$FORKLINGS_ROOT" build/tests/guard || return 1
    mkdir -p "$COPY"
    (cd "$FORKLINGS_ROOT" && git ls-files -co --exclude-standard -z |
        xargs -0 tar -cf - --) | tar -xf - -C "$COPY"
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
}
