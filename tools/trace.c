/* SPDX-License-Identifier: MIT */
/*
 * trace.c: draw a pool run from its trace, as an SVG timeline and as text.
 *
 * A lesson program run with POOL_TRACE=FILE appends one line per event:
 *   task INDEX COUNT PID START_NS END_NS   worker PID ran items INDEX to
 *                                          INDEX + COUNT - 1 (a chunk)
 *   wait PID START_NS END_NS               the parent PID sat idle, waiting
 * Times are CLOCK_MONOTONIC nanoseconds, the same clock in every process.
 * Lines starting with # and lines of other kinds are skipped.
 *
 * The picture has one lane per worker (in the order they started work) and
 * one for the parent, one box per task labelled with its first item, and a
 * time axis in milliseconds. The text form draws the same lanes in COLS
 * columns, for a terminal without a browser.
 *
 * Usage: trace [-o SVG] [-w COLS] TRACEFILE
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROG "trace"
#define MAX_LANES 1024

struct event {
    long long first;    /* first item of the task; -1 for a wait */
    long long count;    /* items in the task */
    long pid;           /* who ran it */
    long long start;    /* CLOCK_MONOTONIC ns */
    long long end;      /* CLOCK_MONOTONIC ns */
    int lane;           /* lane index, filled by assign_lanes() */
};

struct run {
    struct event *ev;   /* every event, in file order */
    size_t n;           /* how many */
    long pids[MAX_LANES]; /* the pid of each worker lane, by first start */
    int nlanes;         /* worker lanes */
    long parent;        /* the parent's pid, 0 when it recorded no wait */
    long long t0, t1;   /* the run's first start and last end */
};

static _Noreturn void
die(const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", PROG, what, strerror(errno));
    exit(1);
}

static _Noreturn void
usage_error(const char *msg)
{
    fprintf(stderr, "%s: %s (try -h)\n", PROG, msg);
    exit(2);
}

/* Read every event of the file at path into r; exits on failure. */
static void
read_trace(const char *path, struct run *r)
{
    FILE *f = fopen(path, "r");
    char line[256];
    size_t cap = 0;

    if (f == NULL)
        die(path);
    while (fgets(line, sizeof line, f) != NULL) {
        struct event e = {0};

        if (sscanf(line, "task %lld %lld %ld %lld %lld", &e.first, &e.count,
                   &e.pid, &e.start, &e.end) == 5) {
        } else if (sscanf(line, "wait %ld %lld %lld", &e.pid, &e.start,
                          &e.end) == 3) {
            e.first = -1;
            r->parent = e.pid;
        } else {
            continue;
        }
        if (e.end < e.start)
            e.end = e.start;
        if (r->n == cap) {
            cap = cap ? 2 * cap : 256;
            if ((r->ev = realloc(r->ev, cap * sizeof *r->ev)) == NULL)
                die("realloc");
        }
        r->ev[r->n++] = e;
    }
    if (ferror(f))
        die(path);
    fclose(f);
    if (r->n == 0) {
        fprintf(stderr, "%s: %s: no task in the trace: was POOL_TRACE set?\n",
                PROG, path);
        exit(1);
    }
}

/* Give each worker a lane, in the order the workers started their first
 * task; find the run's time span. */
static void
assign_lanes(struct run *r)
{
    r->t0 = r->ev[0].start;
    r->t1 = r->ev[0].end;
    for (size_t i = 0; i < r->n; i++) {
        if (r->ev[i].start < r->t0)
            r->t0 = r->ev[i].start;
        if (r->ev[i].end > r->t1)
            r->t1 = r->ev[i].end;
    }
    for (;;) {                  /* the unplaced worker that started first */
        long best = 0;
        long long when = 0;

        for (size_t i = 0; i < r->n; i++) {
            int placed = 0;

            if (r->ev[i].first < 0)
                continue;
            for (int l = 0; l < r->nlanes && !placed; l++)
                placed = r->pids[l] == r->ev[i].pid;
            if (!placed && (best == 0 || r->ev[i].start < when)) {
                best = r->ev[i].pid;
                when = r->ev[i].start;
            }
        }
        if (best == 0 || r->nlanes == MAX_LANES)
            break;
        r->pids[r->nlanes++] = best;
    }
    for (size_t i = 0; i < r->n; i++) {
        r->ev[i].lane = r->nlanes;          /* the parent's lane, last */
        for (int l = 0; l < r->nlanes; l++)
            if (r->ev[i].first >= 0 && r->pids[l] == r->ev[i].pid)
                r->ev[i].lane = l;
    }
}

/* A step for the time axis: 1, 2 or 5 times a power of ten, in ms, giving
 * about `ticks` ticks over `span_ms`. */
static double
tick_step(double span_ms, int ticks)
{
    for (double step = 1e-3;; step *= 10) {
        if (span_ms / step <= ticks)
            return step;
        if (span_ms / (step * 2) <= ticks)
            return step * 2;
        if (span_ms / (step * 5) <= ticks)
            return step * 5;
    }
}

/* Print the task's label, "7" or "8-11" for a chunk, into buf. */
static void
label(const struct event *e, char *buf, size_t size)
{
    if (e->count > 1)
        snprintf(buf, size, "%lld-%lld", e->first, e->first + e->count - 1);
    else
        snprintf(buf, size, "%lld", e->first);
}

static void
write_svg(const struct run *r, const char *path)
{
    const double left = 130, right = 20, top = 40, lane_h = 26, width = 960;
    const double plot = width - left - right;
    int lanes = r->nlanes + (r->parent != 0);
    double height = top + lanes * lane_h + 50;
    double span = (double)(r->t1 - r->t0) / 1e6, step = tick_step(span, 10);
    FILE *f = fopen(path, "w");
    size_t tasks = 0;

    if (f == NULL)
        die(path);
    for (size_t i = 0; i < r->n; i++)
        tasks += r->ev[i].first >= 0;       /* waits are not tasks */
    if (span <= 0)
        span = 1e-3;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
               "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n",
            width, height, width, height);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
               "<text x=\"%.0f\" y=\"22\" font-size=\"15\">%zu tasks, %d "
               "workers, %.3f ms</text>\n",
            left, tasks, r->nlanes, span);
    for (int l = 0; l < lanes; l++) {
        double y = top + l * lane_h;

        fprintf(f, "<rect x=\"%.0f\" y=\"%.1f\" width=\"%.0f\" height=\"%.0f\" "
                   "fill=\"%s\"/>\n", left, y, plot, lane_h,
                l % 2 ? "#f4f4f4" : "#fafafa");
        if (l < r->nlanes)
            fprintf(f, "<text x=\"8\" y=\"%.1f\">worker %d (%ld)</text>\n",
                    y + 17, l + 1, r->pids[l]);
        else
            fprintf(f, "<text x=\"8\" y=\"%.1f\">parent (%ld)</text>\n",
                    y + 17, r->parent);
    }
    for (size_t i = 0; i < r->n; i++) {
        const struct event *e = &r->ev[i];
        double x = left + plot * (e->start - r->t0) / 1e6 / span;
        double w = plot * (e->end - e->start) / 1e6 / span;
        double y = top + e->lane * lane_h + 3;
        char text[48];

        if (w < 1)
            w = 1;
        if (e->first < 0) {
            fprintf(f, "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.0f\" "
                       "fill=\"#dddddd\" stroke=\"#999999\"><title>parent "
                       "waiting, %.3f ms</title></rect>\n",
                    x, y, w, lane_h - 6, (e->end - e->start) / 1e6);
            if (w >= 60)        /* a label only where it fits */
                fprintf(f, "<text x=\"%.2f\" y=\"%.1f\" fill=\"#555555\">"
                           "waiting</text>\n", x + 4, y + 14);
            continue;
        }
        label(e, text, sizeof text);
        fprintf(f, "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.0f\" "
                   "fill=\"hsl(%lld, 60%%, 70%%)\" stroke=\"#333333\" "
                   "stroke-width=\"0.5\"><title>task %s, worker %ld, "
                   "%.3f to %.3f ms</title></rect>\n",
                x, y, w, lane_h - 6, (e->first * 47) % 360, text, e->pid,
                (e->start - r->t0) / 1e6, (e->end - r->t0) / 1e6);
        if (w >= 7.5 * (double)strlen(text) + 4)
            fprintf(f, "<text x=\"%.2f\" y=\"%.1f\">%s</text>\n", x + 3,
                    y + 14, text);
    }
    for (double t = 0; t <= span * 1.0001; t += step) {
        double x = left + plot * t / span, y = top + lanes * lane_h;

        fprintf(f, "<line x1=\"%.2f\" y1=\"%.1f\" x2=\"%.2f\" y2=\"%.1f\" "
                   "stroke=\"#888888\"/>\n<text x=\"%.2f\" y=\"%.1f\" "
                   "text-anchor=\"middle\">%g</text>\n",
                x, y, x, y + 6, x, y + 20, t);
    }
    fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"middle\">time since "
               "the first task started (ms)</text>\n</svg>\n",
            left + plot / 2, top + lanes * lane_h + 40);
    if (fclose(f) == EOF)
        die(path);
}

/* The same picture in `cols` columns of text. */
static void
write_text(const struct run *r, int cols)
{
    int lanes = r->nlanes + (r->parent != 0);
    double span = (double)(r->t1 - r->t0);
    char *row = malloc((size_t)cols + 1);

    if (row == NULL)
        die("malloc");
    if (span <= 0)
        span = 1;
    for (int l = 0; l < lanes; l++) {
        memset(row, ' ', (size_t)cols);
        row[cols] = '\0';
        for (size_t i = 0; i < r->n; i++) {
            const struct event *e = &r->ev[i];
            int a = (int)((e->start - r->t0) / span * (cols - 1));
            int b = (int)((e->end - r->t0) / span * (cols - 1));
            char text[48];

            if (e->lane != l)
                continue;
            if (e->first < 0) {
                memset(row + a, '.', (size_t)(b - a + 1));
                continue;
            }
            label(e, text, sizeof text);
            row[a] = '[';
            for (int c = a + 1; c < b; c++)
                row[c] = c - a - 1 < (int)strlen(text) ? text[c - a - 1] : '=';
            row[b] = b > a ? ']' : '|';
        }
        if (l < r->nlanes)
            printf("worker %-3d %s\n", l + 1, row);
        else
            printf("parent     %s\n", row);
    }
    printf("           0%*s%.3f ms\n", cols - 10, "", (r->t1 - r->t0) / 1e6);
    free(row);
}

int
main(int argc, char **argv)
{
    const char *svg = NULL;
    int opt, cols = 68;
    struct run r = {0};

    opterr = 0;
    while ((opt = getopt(argc, argv, ":ho:w:")) != -1) {
        switch (opt) {
        case 'h':
            printf("usage: %s [-o SVG] [-w COLS] TRACEFILE\n"
                   "Draws a pool run recorded with POOL_TRACE=TRACEFILE: as "
                   "text on stdout,\nand as an SVG timeline with -o.\n", PROG);
            return 0;
        case 'o': svg = optarg; break;
        case 'w':
            cols = atoi(optarg);
            if (cols < 20 || cols > 1000)
                usage_error("-w must be a number from 20 to 1000");
            break;
        default: usage_error("unknown option or missing value");
        }
    }
    if (optind != argc - 1)
        usage_error("needs one TRACEFILE");
    read_trace(argv[optind], &r);
    assign_lanes(&r);
    write_text(&r, cols);
    if (svg != NULL) {
        write_svg(&r, svg);
        printf("picture: %s\n", svg);
    }
    free(r.ev);
    return 0;
}
