// rng.h: a small seeded generator (xoshiro256** seeded by splitmix64).
// Same seed, same stream, on every machine.
#ifndef ELASTILM_RNG_H
#define ELASTILM_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct { uint64_t s[4]; } Rng;

void rng_seed(Rng *r, uint64_t seed);
uint64_t rng_u64(Rng *r);
float rng_uniform(Rng *r);              // [0, 1)
float rng_normal(Rng *r);               // mean 0, std 1 (Box-Muller)
uint64_t rng_below(Rng *r, uint64_t n); // uniform in [0, n), n > 0

// A 64-bit hash of (a, b): a + golden * (b + 1) through splitmix64's finaliser.
// Derives independent seeds (per step, per micro-batch, ...) from one seed.
uint64_t rng_mix(uint64_t a, uint64_t b);
// Fisher-Yates shuffle of n elements of `size` bytes (i = n-1 ... 1 swaps with rng_below(i + 1)).
void rng_shuffle(Rng *r, void *base, size_t n, size_t size);

#endif
