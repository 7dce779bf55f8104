// The emulator's execution state (tests/cuemu): what runtime.cc (the schedule,
// barriers, collectives, launches), fiber.cc (the fibers and their context switch)
// and memcheck.cc (shared memory, race and device-memory checks) share. Not seen by
// the emulated sources.
#ifndef CUEMU_STATE_H
#define CUEMU_STATE_H

#include "internal.h"

#include "cuemu.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>

#include <vector>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CUEMU_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define CUEMU_ASAN 1
#endif

// The hand-written switch on x86-64; ucontext elsewhere, or with -DCUEMU_UCONTEXT
// (experiments/bench/bench_cuemu.sh compares the two).
#if defined(__x86_64__) && !defined(CUEMU_UCONTEXT)
#define CUEMU_ASM_SWITCH 1
#else
#define CUEMU_ASM_SWITCH 0
#endif
#if !CUEMU_ASM_SWITCH
#include <ucontext.h>
#endif

namespace cuemu {

// ---- configuration (runtime.cc: CUEMU_SCHEDULE, CUEMU_WORKERS, CUEMU_RACE, CUEMU_STATS) ----

enum Schedule { SCHED_FORWARD, SCHED_REVERSE, SCHED_RANDOM };

struct Config {
    Schedule schedule;
    uint64_t seed;
    int workers;
    size_t stack_bytes;
    bool race;
    bool stats;
    char name[64];
};

// Valid once cfg() has run: every launch calls it before any block starts, so what a
// kernel's blocks run (the switch, the memory checks) reads g_cfg directly.
extern Config g_cfg;
const Config &cfg(void);

// ---- state ----------------------------------------------------------------------------------

enum ThreadRun { T_READY, T_BARRIER, T_WARP, T_DONE };

struct Worker;

struct ThreadState {
#if CUEMU_ASM_SWITCH
    void *sp; // saved stack pointer while switched out
#else
    ucontext_t uc;
#endif
    char *stack;          // [stack_bytes] below a guard page
    void *fake_stack;     // ASan's, while switched out
    uint3 tid;
    int linear, warp, lane;
    ThreadRun run;
    // the warp collective this lane waits in (its operation and mask are the group's)
    uint64_t in, out;
    int param, width;
    void *wmma_args;
    WmmaRun wmma_run;
};

struct WarpGroup {
    bool used;
    unsigned mask, arrived;
    WarpOp op;
    Site site;
    const char *what; // the wmma operation's name
    int first_lane;
};

enum { GROUPS_PER_WARP = 4, MAX_WARPS = MAX_THREADS_PER_BLOCK / 32 };

struct SharedVar {
    const void *tag;
    char *p;
    size_t bytes;
    const char *name;
};

// One word (4 bytes) of the shared-memory arena, as the race check sees it.
struct Shadow {
    uint32_t gen;            // the block serial it belongs to (else: never written in this block)
    int16_t wt, rt;          // last writer, last reader (-1 none)
    uint32_t wB, wG, rB, rG; // their barrier epoch and warp generation at the access
    uint8_t w_atomic;
    const void *wpc, *rpc;      // the accesses' code addresses, or NULL with
    const char *wfile, *rfile;  // their source locations instead (atomics, wmma)
    int wline, rline;
};

enum {
    ARENA_BYTES = 512 * 1024,
    ARENA_DYN_OFFSET = 256, // a poisoned gap before the dynamic region
    ARENA_GAP = 64,         // between shared variables
};

struct Worker {
    pthread_t thread;
    std::vector<ThreadState *> threads; // grows to the largest block seen
    // the worker's own context
#if CUEMU_ASM_SWITCH
    void *main_sp;
#else
    ucontext_t main_uc;
#endif
    void *main_fake_stack;
    const void *main_bottom;
    size_t main_size;
    // the block being run
    const LaunchCfg *launch;
    void (*body)(void *);
    void *arg;
    uint64_t launch_serial;
    uint3 bid;
    dim3 bdim, gdim;
    int n_threads, n_live, n_warps;
    unsigned warp_exist[MAX_WARPS], warp_exited[MAX_WARPS];
    WarpGroup groups[MAX_WARPS][GROUPS_PER_WARP];
    uint32_t warp_gen[MAX_WARPS];
    // ready threads: a bitset over thread indices
    uint64_t ready[MAX_THREADS_PER_BLOCK / 64];
    int n_ready;
    uint64_t rng;
    // __syncthreads
    int bar_arrived, bar_count;
    Site bar_site;
    int bar_first;
    uint32_t epoch;
    // shared memory
    char *arena;
    size_t arena_used, dyn_bytes, static_bytes;
    std::vector<SharedVar> vars;
    Shadow *shadow;
    uint32_t block_serial;
    // the launch's parameters, and recently used device allocations (the device-memory check)
    uintptr_t param_lo;
    size_t param_len;
    uintptr_t alloc_lo[4];
    size_t alloc_len[4];
    uint64_t alloc_frees; // device_free_count() when the cache was filled
    int alloc_next;
    // counters (CUEMU_STATS)
    uint64_t n_switches;
};

// The worker this host thread is, the fiber it runs, and the shared-memory arena the
// coverage callbacks check: [tl_arena, tl_arena + tl_arena_len) while a block runs.
// __thread, not thread_local: no wrapper call on the callbacks' path.
extern __thread Worker *tl_w;
extern __thread ThreadState *tl_t;
extern __thread uintptr_t tl_arena, tl_arena_len;

// ---- reports (runtime.cc) -----------------------------------------------------------------
[[noreturn]] void vfail(Site s, const char *fmt, va_list ap);
[[noreturn]] void fail_pc(const void *pc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void thread_desc(Worker *w, int linear, char *buf, size_t n); // "thread (x,y,z)"
ThreadState *current(Site s, const char *what);                // the running CUDA thread, or a report
void thread_exit(Worker *w, ThreadState *t);                   // a fiber's kernel call returned

// ---- fibers (fiber.cc) -----------------------------------------------------------------------
ThreadState *thread_new(void);
void thread_start(ThreadState *t); // to run the kernel from the top of its stack
// From the running fiber (or the worker's context, from == NULL) to `to` (or back to the
// worker's context, to == NULL); a fiber that has finished passes dying = true.
void switch_to(Worker *w, ThreadState *from, ThreadState *to, bool dying);

// ---- shared memory (memcheck.cc) ----------------------------------------------------------------
void arena_reset(Worker *w, size_t dyn); // a block starts with `dyn` bytes of dynamic shared memory

} // namespace cuemu

#endif
