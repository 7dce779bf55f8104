// dist.h: ranks for data-parallel work.
//
// `mpirun -np N elastilm ...` starts N processes; dist_init finds out whether
// it runs under an MPI launcher (Open MPI, MPICH/Hydra, PMIx environment
// variables) and only then initialises MPI, so a plain `elastilm ...` never
// touches MPI. Without a launcher: rank 0 of 1, and every collective is the
// identity. CPU collectives go through MPI; GPU ones will use NCCL.
#ifndef ELASTILM_DIST_H
#define ELASTILM_DIST_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/status.h"

typedef struct {
    int rank;       // this process, 0-based
    int world;      // number of processes
    bool mpi;       // MPI was initialised by dist_init
} Dist;

// Initialises once per process; later calls return the same Dist.
Status dist_init(Dist *d);
void dist_finalize(void);

// In-place sum over all ranks (every rank gets the result).
Status dist_allreduce_sum_f32(const Dist *d, float *x, int64_t n);
Status dist_allreduce_sum_f64(const Dist *d, double *x, int64_t n);
// Copies root's n bytes to every rank.
Status dist_broadcast(const Dist *d, void *buf, int64_t n, int root);
Status dist_barrier(const Dist *d);

#endif
