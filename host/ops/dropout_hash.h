// dropout_hash.h: the counter-based keep test of op_dropout.
//
// Every backend (this C code, a CUDA kernel) must drop exactly the same
// elements for the same (seed, row, col), so the test is a pure function of
// those three integers, written here once in plain C that nvcc also compiles.
//
// The exact formula (all arithmetic on uint64_t, wrapping mod 2^64):
//   S(z)   = F(z + 0x9e3779b97f4a7c15)            one splitmix64 output step
//   F(z)   : z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
//            z = (z ^ (z >> 27)) * 0x94d049bb133111eb
//            return z ^ (z >> 31)
//   h      = S(S(S(seed) ^ row) ^ col)
//   u      = (float)(h >> 40) * 2^-24              top 24 bits: exact in float, in [0, 1)
//   keep   = u >= p                                (a float comparison, p a float)
//   scale  = 1.0f / (1.0f - p)                     (float division, once per call)
//   out    = keep ? x * scale : 0.0f               (float multiply)
// S is a bijection of uint64, so two columns of one row never share a draw.
#ifndef ELASTILM_DROPOUT_HASH_H
#define ELASTILM_DROPOUT_HASH_H

#include <stdint.h>

#ifdef __CUDACC__
#define DROPOUT_HD __host__ __device__
#else
#define DROPOUT_HD
#endif

// One splitmix64 step from state z: the output S(z) above.
static inline DROPOUT_HD uint64_t dropout_splitmix(uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// The per-row key S(S(seed) ^ row): computed once per row by a loop over columns.
static inline DROPOUT_HD uint64_t dropout_row_key(uint64_t seed, uint64_t row) {
    return dropout_splitmix(dropout_splitmix(seed) ^ row);
}

// The uniform draw u in [0, 1) of column col of the row with this key.
static inline DROPOUT_HD float dropout_uniform(uint64_t row_key, uint64_t col) {
    return (float)(dropout_splitmix(row_key ^ col) >> 40) * (1.0f / 16777216.0f);
}

// Whether element (row, col) is kept at drop probability p.
static inline DROPOUT_HD int dropout_keep(uint64_t seed, uint64_t row, uint64_t col, float p) {
    return dropout_uniform(dropout_row_key(seed, row), col) >= p;
}

#endif
