/* SPDX-License-Identifier: MIT */
/*
 * hello.c: the seed's second program on the capstone pool, for `make bench`
 * to time as a whole process against the Python original (seed.py):
 *     with mp.Pool(10) as p:
 *         p.map(fx, range(100))
 * Usage: hello (no options: the seed's numbers, 10 workers, 0..99)
 */
#include <stdio.h>
#include <unistd.h>

#include "pool.h"            /* lesson 08's, from the tree make bench times (-I) */

/* The seed's fx: print one greeting, as one write. */
static int
fx(const void *args, const void *in, void *out)
{
    (void)args;
    (void)out;
    printf("hello for %lldth time!\n", *(const long long *)in);
    return fflush(stdout) == EOF;
}

int
main(void)
{
    long long numbers[100];
    struct pool_error err;
    struct pool *p;
    int failed;

    for (int n = 0; n < 100; n++)
        numbers[n] = n;
    fflush(NULL);
    if ((p = pool_create(&(struct pool_config){.workers = 10}, &err)) == NULL) {
        fprintf(stderr, "hello: %s\n", err.message);
        return 1;
    }
    failed = pool_map(p, &(struct pool_func){.call = fx,
                                             .in_size = sizeof numbers[0]},
                      numbers, NULL, 100, 0) == -1;
    if (failed)
        fprintf(stderr, "hello: %s\n", pool_last_error(p)->message);
    pool_close(p);
    failed |= pool_join(p) == -1;
    pool_destroy(&p);
    return failed;
}
