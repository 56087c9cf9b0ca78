/* SPDX-License-Identifier: MIT */
/*
 * functor.c: lesson 04's functor, given: the seed's Multi(x, y, z), and a
 * functor that binds y and z to it, as the seed's Functor(y, z).
 */
#include "functor.h"

long long
multi(long long x, long long y, long long z)
{
    return z * (x * z + y);
}

struct functor
functor_make(long long (*fn)(long long, long long, long long),
             long long y, long long z)
{
    return (struct functor){.fn = fn, .y = y, .z = z};
}

long long
functor_call(const struct functor *f, long long x)
{
    return f->fn(x, f->y, f->z);
}
