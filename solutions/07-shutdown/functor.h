/* SPDX-License-Identifier: MIT */
/*
 * functor.h: the seed's Multi and Functor in C. A functor is a function
 * pointer with some of its arguments bound, as a Python object with a
 * __call__ method; the pool's map takes one instead of a bare function.
 */
#ifndef FUNCTOR_H
#define FUNCTOR_H

/*
 * The largest |x|, |y| and |z| the program accepts. Within it,
 * |z * (x * z + y)| <= 10^6 * (10^12 + 10^6), about 10^18, which fits in a
 * long long (LLONG_MAX is about 9.2 * 10^18): multi() never overflows.
 */
#define MULTI_LIMIT 1000000LL

/* A functor, as the seed's class Functor: a function with y and z bound. */
struct functor {
    long long (*fn)(long long x, long long y, long long z); /* as Multi */
    long long y;                /* bound when made, as self.y */
    long long z;                /* bound when made, as self.z */
};

/*
 * The seed's Multi(x, y, z): z * (x * z + y). Requires |x|, |y|, |z| <=
 * MULTI_LIMIT: signed overflow is undefined behaviour in C, so the program
 * refuses bigger arguments rather than compute a wrong number.
 */
long long multi(long long x, long long y, long long z);

/* A functor that calls fn(x, y, z) for each x: the seed's Functor(y, z). */
struct functor functor_make(long long (*fn)(long long, long long, long long),
                            long long y, long long z);

/* Call f on x, as Instance(x) calls Instance.__call__(x). */
long long functor_call(const struct functor *f, long long x);

#endif
