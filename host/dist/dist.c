// MPI side of dist.h.
#include "dist.h"

#include <mpi.h>
#include <stdlib.h>

static Dist g_dist;
static bool g_done;

static bool launched_by_mpi(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        if (getenv(vars[i])) return true;
    return false;
}

static Status mpi_fail(int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return status_fail(ST_IO, "MPI %s failed: %s", what, msg);
}

Status dist_init(Dist *d) {
    if (!g_done) {
        g_dist = (Dist){.rank = 0, .world = 1, .mpi = false};
        if (launched_by_mpi()) {
            int rc = MPI_Init(NULL, NULL);
            if (rc != MPI_SUCCESS) return mpi_fail(rc, "initialisation");
            MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
            MPI_Comm_rank(MPI_COMM_WORLD, &g_dist.rank);
            MPI_Comm_size(MPI_COMM_WORLD, &g_dist.world);
            g_dist.mpi = true;
        }
        g_done = true;
    }
    *d = g_dist;
    return ST_OK;
}

void dist_finalize(void) {
    if (g_done && g_dist.mpi) MPI_Finalize();
    g_done = false;
}

// MPI counts are ints: large buffers go in chunks.
#define CHUNK ((int64_t)1 << 28)

Status dist_allreduce_sum_f32(const Dist *d, float *x, int64_t n) {
    if (!d->mpi || d->world == 1) return ST_OK;
    for (int64_t i = 0; i < n; i += CHUNK) {
        int c = (int)(n - i < CHUNK ? n - i : CHUNK);
        int rc = MPI_Allreduce(MPI_IN_PLACE, x + i, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "all-reduce");
    }
    return ST_OK;
}

Status dist_allreduce_sum_f64(const Dist *d, double *x, int64_t n) {
    if (!d->mpi || d->world == 1) return ST_OK;
    for (int64_t i = 0; i < n; i += CHUNK) {
        int c = (int)(n - i < CHUNK ? n - i : CHUNK);
        int rc = MPI_Allreduce(MPI_IN_PLACE, x + i, c, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "all-reduce");
    }
    return ST_OK;
}

Status dist_broadcast(const Dist *d, void *buf, int64_t n, int root) {
    if (!d->mpi || d->world == 1) return ST_OK;
    for (int64_t i = 0; i < n; i += CHUNK) {
        int c = (int)(n - i < CHUNK ? n - i : CHUNK);
        int rc = MPI_Bcast((char *)buf + i, c, MPI_BYTE, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "broadcast");
    }
    return ST_OK;
}

Status dist_barrier(const Dist *d) {
    if (!d->mpi || d->world == 1) return ST_OK;
    int rc = MPI_Barrier(MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? ST_OK : mpi_fail(rc, "barrier");
}
