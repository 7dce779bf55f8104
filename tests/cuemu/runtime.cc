// The execution model of the CUDA-on-CPU emulator: kernel launches, blocks of
// fibers, the schedule, barriers and warp collectives, and the reports. The fibers
// themselves are fiber.cc's, the memory checks below memcheck.cc's; state.h holds
// what the three share.
//
// A launch runs synchronously (the project drives each device from one host thread
// on its default stream, so stream order is program order). Its blocks are dealt to
// workers, one host thread each (CUEMU_WORKERS, default: the online CPUs); a worker
// runs one block at a time, every CUDA thread of it a fiber on the worker's thread.
// A fiber runs until it reaches a barrier or a warp collective (or exits); then the
// schedule picks the next ready fiber (CUEMU_SCHEDULE: forward = the lowest thread
// index, reverse = the highest, random[:seed] = any, seeded per launch and block), and
// the last fiber to arrive completes the barrier and runs on. The context switch is a
// few instructions of assembly on x86-64 (callee-saved registers, MXCSR and the x87
// control word), ucontext elsewhere, with AddressSanitizer's fiber annotations.
//
// Checks, each reported as "file:line: cuemu: ..." with the kernel, block, thread
// and schedule, then abort():
//  - __syncthreads: every live thread at the same call site, none exited before it
//    (a barrier in divergent code);
//  - warp collectives: the caller in its mask, every lane of the mask existing, not
//    exited and arriving at the same call site, operation and mask; a shuffle reading
//    a lane outside the mask;
//  - deadlock: threads waiting with none ready, each group's wait site listed;
//  - shared memory: NaN-filled (0xff bytes) when a block starts; __shared__ variables
//    and the dynamic region carved from one arena per worker with poisoned gaps
//    (ASan reports an access past a variable); with the kernels built with
//    -fsanitize-coverage=trace-loads,trace-stores (make test-cuda-emu does), every
//    4-byte word of it has a shadow (last writer, last reader, barrier epochs) and an
//    access that no __syncthreads (or, within a warp, a full-warp __syncwarp) orders
//    after a conflicting access of another thread is a race, as is a read of a word
//    no thread of the block has written;
//  - device memory: a kernel load or store (the same callbacks) outside the block's
//    shared memory, the thread's own stack and the launch's parameters must fall in
//    a live cudaMalloc allocation: a host pointer handed to a kernel is reported
//    (a GPU would fault), and ASan's redzones catch an access past an allocation;
//  - launch limits (block and grid sizes, shared memory above 48 KiB without
//    cudaFuncSetAttribute's opt-in, static shared memory above 48 KiB).
#include "state.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <atomic>

#ifdef CUEMU_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

namespace cuemu {

// ---- configuration --------------------------------------------------------------------

Config g_cfg;
static pthread_once_t g_cfg_once = PTHREAD_ONCE_INIT;

static void config_read(void) {
    g_cfg.schedule = SCHED_FORWARD;
    g_cfg.seed = 1;
    const char *s = getenv("CUEMU_SCHEDULE");
    if (s && *s) {
        if (!strcmp(s, "forward")) g_cfg.schedule = SCHED_FORWARD;
        else if (!strcmp(s, "reverse")) g_cfg.schedule = SCHED_REVERSE;
        else if (!strncmp(s, "random", 6) && (s[6] == 0 || s[6] == ':')) {
            g_cfg.schedule = SCHED_RANDOM;
            if (s[6] == ':') {
                char *end;
                errno = 0;
                g_cfg.seed = strtoull(s + 7, &end, 10);
                if (errno || end == s + 7 || *end) {
                    fprintf(stderr, "cuemu: CUEMU_SCHEDULE=%s: the seed is not a number (random:SEED)\n", s);
                    exit(2);
                }
            }
        } else {
            fprintf(stderr, "cuemu: CUEMU_SCHEDULE=%s: expected forward, reverse, random or random:SEED\n", s);
            exit(2);
        }
    }
    if (g_cfg.schedule == SCHED_RANDOM) snprintf(g_cfg.name, sizeof g_cfg.name, "random seed %llu", (unsigned long long)g_cfg.seed);
    else snprintf(g_cfg.name, sizeof g_cfg.name, "%s", g_cfg.schedule == SCHED_FORWARD ? "forward" : "reverse");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    g_cfg.workers = cpus > 0 ? (int)cpus : 1;
    const char *w = getenv("CUEMU_WORKERS");
    if (w && *w) {
        char *end;
        long v = strtol(w, &end, 10);
        if (*end || v < 1 || v > 256) {
            fprintf(stderr, "cuemu: CUEMU_WORKERS=%s: expected a number of host threads, 1 ... 256\n", w);
            exit(2);
        }
        g_cfg.workers = (int)v;
    }
    if (g_cfg.workers > 256) g_cfg.workers = 256;
    g_cfg.stack_bytes = 256 * 1024;
    const char *r = getenv("CUEMU_RACE");
    g_cfg.race = !(r && !strcmp(r, "0"));
    const char *st = getenv("CUEMU_STATS");
    g_cfg.stats = st && strcmp(st, "0");
}

const Config &cfg(void) {
    pthread_once(&g_cfg_once, config_read);
    return g_cfg;
}

const char *schedule_name(void) { return cfg().name; }

__thread Worker *tl_w;
__thread ThreadState *tl_t;
__thread uintptr_t tl_arena, tl_arena_len;

static std::atomic<uint64_t> g_launch_serial{0};
static std::atomic<uint64_t> g_stat_launches{0}, g_stat_blocks{0}, g_stat_threads{0};
static pthread_mutex_t g_report_mu = PTHREAD_MUTEX_INITIALIZER;

// ---- reports ---------------------------------------------------------------------------------

void describe_pc(const void *pc, char *buf, size_t n) {
#ifdef CUEMU_ASAN
    __sanitizer_symbolize_pc(const_cast<void *>(pc), "%s:%l", buf, n);
    if (buf[0] && strncmp(buf, "<null>", 6)) {
        char cwd[512]; // a path under the working directory, relative (as the other reports name files)
        size_t k = getcwd(cwd, sizeof cwd) ? strlen(cwd) : 0;
        if (k && !strncmp(buf, cwd, k) && buf[k] == '/') memmove(buf, buf + k + 1, strlen(buf + k + 1) + 1);
        return;
    }
#endif
    snprintf(buf, n, "pc %p", pc);
}

static void where(char *buf, size_t n) {
    Worker *w = tl_w;
    ThreadState *t = tl_t;
    if (!w || !w->launch) {
        snprintf(buf, n, "outside a kernel");
        return;
    }
    int k = snprintf(buf, n, "in kernel %s (launched at %s:%d), block (%u,%u,%u)", w->launch->name, w->launch->site.file,
                     w->launch->site.line, w->bid.x, w->bid.y, w->bid.z);
    if (t && k > 0 && (size_t)k < n)
        snprintf(buf + k, n - (size_t)k, ", thread (%u,%u,%u) (warp %d, lane %d)", t->tid.x, t->tid.y, t->tid.z, t->warp,
                 t->lane);
}

void vfail(Site s, const char *fmt, va_list ap) {
    pthread_mutex_lock(&g_report_mu);
    char msg[2048], loc[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    where(loc, sizeof loc);
    fprintf(stderr, "%s:%d: cuemu: error: %s\n  %s, schedule %s\n", s.file ? s.file : "?", s.line, msg, loc,
            schedule_name());
    fflush(stderr);
    abort();
}

void fail(Site s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail(s, fmt, ap);
}

// A report at a code address (a load or store the coverage callbacks saw).
void fail_pc(const void *pc, const char *fmt, ...) {
    char file[256];
    describe_pc(pc, file, sizeof file);
    char *colon = strrchr(file, ':');
    int line = 0;
    if (colon) {
        line = atoi(colon + 1);
        *colon = 0;
    }
    va_list ap;
    va_start(ap, fmt);
    vfail(Site{file, line}, fmt, ap);
}

static bool same_site(const Site &a, const Site &b) {
    return a.line == b.line && (a.file == b.file || (a.file && b.file && !strcmp(a.file, b.file)));
}

static const char *op_name(WarpOp op) {
    switch (op) {
    case OP_SYNCWARP: return "__syncwarp";
    case OP_SHFL_IDX: return "__shfl_sync";
    case OP_SHFL_XOR: return "__shfl_xor_sync";
    case OP_SHFL_UP: return "__shfl_up_sync";
    case OP_SHFL_DOWN: return "__shfl_down_sync";
    case OP_BALLOT: return "__ballot_sync";
    case OP_ANY: return "__any_sync";
    case OP_ALL: return "__all_sync";
    case OP_MATCH_ANY: return "__match_any_sync";
    case OP_MATCH_ALL: return "__match_all_sync";
    case OP_REDUCE_ADD: return "__reduce_add_sync";
    case OP_REDUCE_MIN: return "__reduce_min_sync";
    case OP_REDUCE_MAX: return "__reduce_max_sync";
    case OP_WMMA: return "wmma";
    }
    return "?";
}

ThreadState *current(Site s, const char *what) {
    ThreadState *t = tl_t;
    if (!t) fail(s, "%s called outside a kernel (host code)", what);
    return t;
}

void thread_desc(Worker *w, int linear, char *buf, size_t n) {
    ThreadState *o = w->threads[linear];
    snprintf(buf, n, "thread (%u,%u,%u)", o->tid.x, o->tid.y, o->tid.z);
}

// ---- the schedule ------------------------------------------------------------------------------

static inline void set_ready(Worker *w, int i) {
    uint64_t bit = 1ull << (i & 63);
    if (!(w->ready[i >> 6] & bit)) {
        w->ready[i >> 6] |= bit;
        w->n_ready++;
    }
}

static inline void clear_ready(Worker *w, int i) {
    uint64_t bit = 1ull << (i & 63);
    if (w->ready[i >> 6] & bit) {
        w->ready[i >> 6] &= ~bit;
        w->n_ready--;
    }
}

static inline uint64_t next_rand(Worker *w) {
    uint64_t x = w->rng; // xorshift64*
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    return x * 2685821657736338717ull;
}

// The next thread to run under the schedule, or -1 when none is ready.
static int pick(Worker *w) {
    if (w->n_ready == 0) return -1;
    const int words = (w->n_threads + 63) / 64;
    switch (cfg().schedule) {
    case SCHED_FORWARD:
        for (int i = 0; i < words; i++)
            if (w->ready[i]) return i * 64 + __builtin_ctzll(w->ready[i]);
        break;
    case SCHED_REVERSE:
        for (int i = words - 1; i >= 0; i--)
            if (w->ready[i]) return i * 64 + 63 - __builtin_clzll(w->ready[i]);
        break;
    case SCHED_RANDOM: {
        int k = (int)(next_rand(w) % (uint64_t)w->n_ready);
        for (int i = 0; i < words; i++) {
            int c = __builtin_popcountll(w->ready[i]);
            if (k >= c) {
                k -= c;
                continue;
            }
            uint64_t m = w->ready[i];
            while (k--) m &= m - 1;
            return i * 64 + __builtin_ctzll(m);
        }
        break;
    }
    }
    return -1;
}

[[noreturn]] static void report_deadlock(Worker *w, Site s);

// The running thread t has stopped (waiting or done): run the next ready one, or go
// back to the worker's context when every thread is done.
static void run_next(Worker *w, ThreadState *t, Site s) {
    int next = pick(w);
    if (next < 0) {
        if (w->n_live > 0) report_deadlock(w, s);
        switch_to(w, t, NULL, t->run == T_DONE);
        return;
    }
    ThreadState *n = w->threads[next];
    clear_ready(w, next);
    if (n == t) return; // (cannot happen: t is not ready)
    switch_to(w, t, n, t->run == T_DONE);
}


// ---- barriers ------------------------------------------------------------------------------------

static void complete_barrier(Worker *w, Site s) {
    if (w->n_live < w->n_threads) {
        int gone = -1;
        for (int i = 0; i < w->n_threads && gone < 0; i++)
            if (w->threads[i]->run == T_DONE) gone = i;
        char who[64];
        thread_desc(w, gone, who, sizeof who);
        fail(s, "__syncthreads() in divergent code: %d of the block's %d threads returned before reaching it (%s among "
             "them)", w->n_threads - w->n_live, w->n_threads, who);
    }
    int count = w->bar_count;
    w->bar_arrived = 0;
    w->bar_count = 0;
    w->epoch++;
    for (int i = 0; i < w->n_threads; i++) {
        ThreadState *o = w->threads[i];
        if (o->run == T_BARRIER) {
            o->run = T_READY;
            o->out = (uint64_t)count;
            if (o != tl_t) set_ready(w, i); // the last to arrive runs on
        }
    }
}

static int barrier(Site s, int pred) {
    ThreadState *t = current(s, "__syncthreads");
    Worker *w = tl_w;
    if (w->bar_arrived == 0) {
        w->bar_site = s;
        w->bar_first = t->linear;
    } else if (!same_site(w->bar_site, s)) {
        char who[64];
        thread_desc(w, w->bar_first, who, sizeof who);
        fail(s, "__syncthreads() in divergent code: this thread waits here while %s waits at the __syncthreads() at %s:%d",
             who, w->bar_site.file, w->bar_site.line);
    }
    t->run = T_BARRIER;
    w->bar_arrived++;
    w->bar_count += pred != 0;
    if (w->bar_arrived == w->n_live) complete_barrier(w, s);
    else run_next(w, t, s);
    t->run = T_READY;
    return (int)t->out;
}

void syncthreads(Site s) { barrier(s, 0); }
int syncthreads_count(Site s, int pred) { return barrier(s, pred); }
int syncthreads_and(Site s, int pred) {
    Worker *w = tl_w;
    int n = w ? w->n_threads : 0;
    return barrier(s, pred) == n;
}
int syncthreads_or(Site s, int pred) { return barrier(s, pred) > 0; }

void threadfence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

void trap(Site s) {
    current(s, "__trap");
    fail(s, "__trap(): the kernel stopped itself (on a GPU: cudaErrorLaunchFailure, the context is lost)");
}

// ---- warp collectives ------------------------------------------------------------------------------

static void lanes_str(unsigned m, char *buf, size_t n) {
    size_t k = 0;
    buf[0] = 0;
    for (int l = 0; l < 32 && k + 8 < n; l++)
        if (m & (1u << l)) k += (size_t)snprintf(buf + k, n - k, "%s%d", k ? "," : "", l);
}

static void complete_group(Worker *w, int warp, WarpGroup &g, ThreadState *self) {
    ThreadState **lanes = &w->threads[warp * 32];
    const unsigned mask = g.mask;
    Site s = g.site;
    auto member = [&](int src) { return src >= 0 && src < 32 && (mask & (1u << src)); };
    switch (g.op) {
    case OP_SYNCWARP: break;
    case OP_SHFL_IDX:
    case OP_SHFL_XOR:
    case OP_SHFL_UP:
    case OP_SHFL_DOWN:
        for (int l = 0; l < 32; l++) {
            if (!(mask & (1u << l))) continue;
            ThreadState *t = lanes[l];
            int width = t->width, base = l & ~(width - 1), src = l;
            switch (g.op) {
            case OP_SHFL_IDX: src = base + (t->param & (width - 1)); break;
            case OP_SHFL_XOR: src = l ^ t->param; if (src < base || src >= base + width) src = l; break;
            case OP_SHFL_UP: src = l - t->param; if (src < base) src = l; break;
            default: src = l + t->param; if (src >= base + width) src = l; break;
            }
            if (!member(src)) {
                char m[160];
                lanes_str(mask, m, sizeof m);
                fail(s, "%s: lane %d reads lane %d, which is not in the mask 0x%08x (lanes %s): the value is undefined",
                     op_name(g.op), l, src, mask, m);
            }
            t->out = lanes[src]->in;
        }
        break;
    case OP_BALLOT:
    case OP_ANY:
    case OP_ALL: {
        unsigned bits = 0;
        for (int l = 0; l < 32; l++)
            if ((mask & (1u << l)) && lanes[l]->in) bits |= 1u << l;
        uint64_t r = g.op == OP_BALLOT ? bits : g.op == OP_ANY ? bits != 0 : bits == mask;
        for (int l = 0; l < 32; l++)
            if (mask & (1u << l)) lanes[l]->out = r;
        break;
    }
    case OP_MATCH_ANY:
    case OP_MATCH_ALL:
        for (int l = 0; l < 32; l++) {
            if (!(mask & (1u << l))) continue;
            unsigned same = 0;
            for (int o = 0; o < 32; o++)
                if ((mask & (1u << o)) && lanes[o]->in == lanes[l]->in) same |= 1u << o;
            lanes[l]->out = g.op == OP_MATCH_ANY ? same : (same == mask ? mask : 0);
        }
        break;
    case OP_REDUCE_ADD:
    case OP_REDUCE_MIN:
    case OP_REDUCE_MAX: {
        uint32_t r = g.op == OP_REDUCE_ADD ? 0u : g.op == OP_REDUCE_MIN ? 0xffffffffu : 0u;
        for (int l = 0; l < 32; l++) {
            if (!(mask & (1u << l))) continue;
            uint32_t v = (uint32_t)lanes[l]->in;
            r = g.op == OP_REDUCE_ADD ? r + v : g.op == OP_REDUCE_MIN ? (v < r ? v : r) : (v > r ? v : r);
        }
        for (int l = 0; l < 32; l++)
            if (mask & (1u << l)) lanes[l]->out = r;
        break;
    }
    case OP_WMMA: {
        void *args[32];
        for (int l = 0; l < 32; l++) args[l] = lanes[l]->wmma_args;
        // run in the context of the last lane to arrive (self); note_read/write attribute by lane
        lanes[0]->wmma_run(args, 32, s);
        break;
    }
    }
    // Only __syncwarp orders memory among the lanes (CUDA's memory model): a shuffle, vote or
    // wmma collective synchronises execution, and a lane's shared-memory write before it is
    // not thereby ordered before another lane's access after it.
    if (g.op == OP_SYNCWARP && mask == w->warp_exist[warp]) w->warp_gen[warp]++;
    g.used = false;
    for (int l = 0; l < 32; l++) {
        if (!(mask & (1u << l))) continue;
        ThreadState *t = lanes[l];
        t->run = T_READY;
        if (t != self) set_ready(w, t->linear);
    }
}

static WarpGroup &join_group(Worker *w, ThreadState *t, Site s, WarpOp op, unsigned mask, const char *what) {
    const int warp = t->warp, lane = t->lane;
    const unsigned exist = w->warp_exist[warp];
    const char *name = op == OP_WMMA ? what : op_name(op);
    if (!(mask & (1u << lane)))
        fail(s, "%s: the calling lane %d is not in its own mask 0x%08x", name, lane, mask);
    if (mask & ~exist) {
        char m[160];
        lanes_str(mask & ~exist, m, sizeof m);
        fail(s, "%s: the mask 0x%08x names lanes %s, which do not exist (the block has %d threads: warp %d has lanes 0x%08x)",
             name, mask, m, w->n_threads, warp, exist);
    }
    if (mask & w->warp_exited[warp]) {
        char m[160];
        lanes_str(mask & w->warp_exited[warp], m, sizeof m);
        fail(s, "%s: the mask 0x%08x names lane(s) %s, which have exited (returned from the kernel): the collective can "
             "never complete", name, mask, m);
    }
    WarpGroup *groups = w->groups[warp], *free_g = NULL;
    for (int i = 0; i < GROUPS_PER_WARP; i++) {
        WarpGroup &g = groups[i];
        if (!g.used) {
            if (!free_g) free_g = &g;
            continue;
        }
        if (!(g.mask & (1u << lane)) && !(mask & g.arrived)) {
            if (!(g.mask & mask)) continue; // another, disjoint group
        }
        if (g.mask != mask || g.op != op || !same_site(g.site, s)) {
            fail(s, "%s (mask 0x%08x): lanes of warp %d disagree: lane %d is here while lane %d waits at %s (mask 0x%08x) "
                 "at %s:%d", name, mask, warp, lane, g.first_lane, g.op == OP_WMMA ? g.what : op_name(g.op), g.mask,
                 g.site.file, g.site.line);
        }
        return g;
    }
    if (!free_g) fail(s, "%s: more than %d concurrent collectives in warp %d", name, GROUPS_PER_WARP, warp);
    free_g->used = true;
    free_g->mask = mask;
    free_g->arrived = 0;
    free_g->op = op;
    free_g->site = s;
    free_g->what = what;
    free_g->first_lane = lane;
    return *free_g;
}

static void arrive(Worker *w, ThreadState *t, WarpGroup &g, Site s) {
    g.arrived |= 1u << t->lane;
    t->run = T_WARP;
    if (g.arrived == g.mask) complete_group(w, t->warp, g, t);
    else run_next(w, t, s);
    t->run = T_READY;
}

uint64_t warp_collective(Site s, WarpOp op, unsigned mask, uint64_t value, int param, int width) {
    ThreadState *t = current(s, op_name(op));
    Worker *w = tl_w;
    if (op == OP_SHFL_IDX || op == OP_SHFL_XOR || op == OP_SHFL_UP || op == OP_SHFL_DOWN) {
        if (width < 1 || width > 32 || (width & (width - 1)))
            fail(s, "%s: width %d is not a power of 2 in 1 ... 32", op_name(op), width);
    }
    WarpGroup &g = join_group(w, t, s, op, mask, NULL);
    t->in = value;
    t->param = param;
    t->width = width;
    arrive(w, t, g, s);
    return t->out;
}

void syncwarp(Site s, unsigned mask) { warp_collective(s, OP_SYNCWARP, mask, 0, 0, 32); }

void wmma_collective(Site s, const char *what, void *lane_args, WmmaRun run) {
    ThreadState *t = current(s, what);
    Worker *w = tl_w;
    if (w->warp_exist[t->warp] != 0xffffffffu)
        fail(s, "wmma::%s: warp %d has only lanes 0x%08x (the block has %d threads): the tensor-core operations need all "
             "32", what, t->warp, w->warp_exist[t->warp], w->n_threads);
    WarpGroup &g = join_group(w, t, s, OP_WMMA, 0xffffffffu, what);
    t->wmma_args = lane_args;
    t->wmma_run = run;
    arrive(w, t, g, s);
}

bool wmma_reverse_mapping(void) { return cfg().schedule != SCHED_FORWARD; }

// ---- exit and deadlock --------------------------------------------------------------------------------

void thread_exit(Worker *w, ThreadState *t) {
    t->run = T_DONE;
    w->n_live--;
    w->warp_exited[t->warp] |= 1u << t->lane;
    for (int i = 0; i < GROUPS_PER_WARP; i++) {
        WarpGroup &g = w->groups[t->warp][i];
        if (g.used && (g.mask & (1u << t->lane)))
            fail(g.site, "%s (mask 0x%08x): lane %d exited (returned from the kernel) while lanes 0x%08x wait for it here",
                 g.op == OP_WMMA ? g.what : op_name(g.op), g.mask, t->lane, g.arrived);
    }
    if (w->bar_arrived > 0 && w->bar_arrived == w->n_live) complete_barrier(w, w->bar_site); // reports the exits
    run_next(w, t, Site{w->launch->site.file, w->launch->site.line});
}

static void report_deadlock(Worker *w, Site s) {
    char buf[4096];
    size_t k = 0;
    k += (size_t)snprintf(buf + k, sizeof buf - k, "deadlock: %d live threads wait and none can run", w->n_live);
    if (w->bar_arrived)
        k += (size_t)snprintf(buf + k, sizeof buf - k, "; %d at the __syncthreads() at %s:%d", w->bar_arrived,
                              w->bar_site.file, w->bar_site.line);
    for (int warp = 0; warp < w->n_warps && k < sizeof buf - 200; warp++)
        for (int i = 0; i < GROUPS_PER_WARP; i++) {
            WarpGroup &g = w->groups[warp][i];
            if (!g.used) continue;
            char m[160];
            lanes_str(g.mask & ~g.arrived, m, sizeof m);
            k += (size_t)snprintf(buf + k, sizeof buf - k, "; warp %d waits at %s (%s:%d) for lanes %s", warp,
                                  g.op == OP_WMMA ? g.what : op_name(g.op), g.site.file, g.site.line, m);
        }
    fail(s, "%s", buf);
}

// ---- blocks ----------------------------------------------------------------------------------------------

static void run_block(Worker *w, const LaunchCfg &c, uint64_t linear) {
    const uint64_t gx = c.grid.x, gy = c.grid.y;
    w->bid = make_uint3((unsigned)(linear % gx), (unsigned)((linear / gx) % gy), (unsigned)(linear / (gx * gy)));
    w->bdim = c.block;
    w->gdim = c.grid;
    const int nt = (int)(c.block.x * c.block.y * c.block.z);
    w->n_threads = w->n_live = nt;
    w->n_warps = (nt + 31) / 32;
    while ((int)w->threads.size() < nt) w->threads.push_back(thread_new());
    for (int i = 0; i < w->n_warps; i++) {
        int lanes = nt - i * 32 < 32 ? nt - i * 32 : 32;
        w->warp_exist[i] = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u;
        w->warp_exited[i] = 0;
        w->warp_gen[i] = 0;
        for (int g = 0; g < GROUPS_PER_WARP; g++) w->groups[i][g].used = false;
    }
    memset(w->ready, 0, sizeof w->ready);
    w->n_ready = 0;
    w->bar_arrived = w->bar_count = 0;
    w->epoch = 1;
    w->rng = (cfg().seed * 0x9E3779B97F4A7C15ull) ^ (w->launch_serial * 0xBF58476D1CE4E5B9ull) ^ (linear + 1) * 0x94D049BB133111EBull;
    if (!w->rng) w->rng = 1;
    arena_reset(w, c.smem);
    for (int i = 0; i < nt; i++) {
        ThreadState *t = w->threads[i];
        t->linear = i;
        t->tid = make_uint3((unsigned)(i % c.block.x), (unsigned)((i / c.block.x) % c.block.y),
                            (unsigned)(i / (c.block.x * c.block.y)));
        t->warp = i / 32;
        t->lane = i % 32;
        t->run = T_READY;
        thread_start(t);
        set_ready(w, i);
    }
    int first = pick(w);
    clear_ready(w, first);
    switch_to(w, NULL, w->threads[first], false);
    // every thread is done
    tl_t = NULL;
}

// ---- workers and launches --------------------------------------------------------------------------------

struct Job {
    const LaunchCfg *cfg;
    void (*body)(void *);
    void *arg;
    size_t arg_bytes;
    uint64_t serial, n_blocks;
    std::atomic<uint64_t> next;
};

static pthread_mutex_t g_pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_pool_start = PTHREAD_COND_INITIALIZER, g_pool_done = PTHREAD_COND_INITIALIZER;
// [0] is the launching thread's; a plain array, so that no destructor runs at exit
// (the workers live as long as the process, and LeakSanitizer still sees them)
static Worker *g_workers[256];
static int g_n_workers;
static Job *g_job;
static uint64_t g_job_serial;
static int g_job_busy;
static pthread_mutex_t g_launch_mu = PTHREAD_MUTEX_INITIALIZER;

static void work(Worker *w, Job *j) {
    w->launch = j->cfg;
    w->body = j->body;
    w->arg = j->arg;
    w->param_lo = (uintptr_t)j->arg;
    w->param_len = j->arg_bytes;
    w->launch_serial = j->serial;
    tl_w = w;
    for (uint64_t b; (b = j->next.fetch_add(1)) < j->n_blocks;) run_block(w, *j->cfg, b);
    w->launch = NULL;
    w->param_len = 0;
    tl_arena_len = 0;
}

static void *worker_main(void *p) {
    Worker *w = (Worker *)p;
    tl_w = w;
    uint64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&g_pool_mu);
        while (g_job_serial == seen) pthread_cond_wait(&g_pool_start, &g_pool_mu);
        seen = g_job_serial;
        Job *j = g_job;
        pthread_mutex_unlock(&g_pool_mu);
        work(w, j);
        pthread_mutex_lock(&g_pool_mu);
        if (--g_job_busy == 0) pthread_cond_signal(&g_pool_done);
        pthread_mutex_unlock(&g_pool_mu);
    }
    return NULL;
}

static void print_stats(void) {
    uint64_t sw = 0;
    for (int i = 0; i < g_n_workers; i++) sw += g_workers[i]->n_switches;
    fprintf(stderr, "cuemu: %llu launches, %llu blocks, %llu threads, %llu fiber switches, %d workers, schedule %s\n",
            (unsigned long long)g_stat_launches.load(), (unsigned long long)g_stat_blocks.load(),
            (unsigned long long)g_stat_threads.load(), (unsigned long long)sw, g_n_workers, schedule_name());
}

static void pool_init(void) {
    if (g_n_workers) return;
    g_workers[g_n_workers++] = new Worker();
    for (int i = 1; i < cfg().workers; i++) {
        Worker *w = new Worker();
        g_workers[g_n_workers++] = w;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 8 << 20);
        if (pthread_create(&w->thread, &attr, worker_main, w) != 0) {
            fprintf(stderr, "cuemu: cannot start worker thread %d\n", i);
            abort();
        }
        pthread_attr_destroy(&attr);
    }
    if (cfg().stats) atexit(print_stats);
}

static bool check_config(const LaunchCfg &c) {
    const Site &s = c.site;
    const uint64_t nt = (uint64_t)c.block.x * c.block.y * c.block.z;
    const char *why = NULL;
    char buf[256];
    if (c.block.x == 0 || c.block.y == 0 || c.block.z == 0 || c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0)
        why = "a zero grid or block dimension";
    else if (nt > MAX_THREADS_PER_BLOCK) {
        snprintf(buf, sizeof buf, "%llu threads per block, more than %d", (unsigned long long)nt, MAX_THREADS_PER_BLOCK);
        why = buf;
    } else if (c.block.x > MAX_BLOCK_X || c.block.y > MAX_BLOCK_Y || c.block.z > MAX_BLOCK_Z) {
        snprintf(buf, sizeof buf, "block (%u,%u,%u) past the limits (1024,1024,64)", c.block.x, c.block.y, c.block.z);
        why = buf;
    } else if (c.grid.x > 0x7fffffffu || c.grid.y > MAX_GRID_YZ || c.grid.z > MAX_GRID_YZ) {
        snprintf(buf, sizeof buf, "grid (%u,%u,%u) past the limits (2^31-1,65535,65535)", c.grid.x, c.grid.y, c.grid.z);
        why = buf;
    }
    if (why) {
        fprintf(stderr, "%s:%d: cuemu: launch of %s refused: %s (a GPU returns cudaErrorInvalidConfiguration)\n", s.file,
                s.line, c.name, why);
        set_last_error(cudaErrorInvalidConfiguration);
        return false;
    }
    size_t limit = func_max_dynamic_smem(c.fn);
    if (c.smem > limit) {
        fprintf(stderr,
                "%s:%d: cuemu: launch of %s refused: %zu bytes of dynamic shared memory, more than the %zu allowed%s (a GPU "
                "returns cudaErrorInvalidValue)\n",
                s.file, s.line, c.name, c.smem, limit,
                limit == SMEM_DEFAULT ? " without cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize)" : "");
        set_last_error(cudaErrorInvalidValue);
        return false;
    }
    if (c.stream != 0) {
        fprintf(stderr, "%s:%d: cuemu: launch of %s on a stream other than the default: streams are not emulated\n",
                s.file, s.line, c.name);
        set_last_error(cudaErrorNotSupported);
        return false;
    }
    return true;
}

void launch(const LaunchCfg &c, void (*body)(void *), void *arg, size_t arg_bytes) {
    if (tl_t) fail(c.site, "launch of %s from device code (dynamic parallelism) is not emulated", c.name);
    if (!check_config(c)) return;
    pthread_mutex_lock(&g_launch_mu); // one launch at a time in the process (one device, one stream)
    pthread_mutex_lock(&g_pool_mu);
    pool_init();
    pthread_mutex_unlock(&g_pool_mu);
    Job j;
    j.cfg = &c;
    j.body = body;
    j.arg = arg;
    j.arg_bytes = arg_bytes;
    j.serial = ++g_launch_serial;
    j.n_blocks = (uint64_t)c.grid.x * c.grid.y * c.grid.z;
    j.next = 0;
    g_stat_launches++;
    g_stat_blocks += j.n_blocks;
    g_stat_threads += j.n_blocks * c.block.x * c.block.y * c.block.z;
    const int helpers = g_n_workers - 1;
    const bool parallel = helpers > 0 && j.n_blocks > 1;
    if (parallel) {
        pthread_mutex_lock(&g_pool_mu);
        g_job = &j;
        g_job_busy = helpers;
        g_job_serial++;
        pthread_cond_broadcast(&g_pool_start);
        pthread_mutex_unlock(&g_pool_mu);
    }
    Worker *saved = tl_w;
    work(g_workers[0], &j);
    tl_w = saved;
    if (parallel) {
        pthread_mutex_lock(&g_pool_mu);
        while (g_job_busy > 0) pthread_cond_wait(&g_pool_done, &g_pool_mu);
        pthread_mutex_unlock(&g_pool_mu);
    }
    pthread_mutex_unlock(&g_launch_mu);
}

// ---- the built-in variables ----------------------------------------------------------------------------------

static ThreadState *in_kernel(const char *what) {
    ThreadState *t = tl_t;
    if (!t) fail(Site{"?", 0}, "%s read outside a kernel", what);
    return t;
}
uint3 thread_idx(void) { return in_kernel("threadIdx")->tid; }
uint3 block_idx(void) {
    in_kernel("blockIdx");
    return tl_w->bid;
}
dim3 block_dim(void) {
    in_kernel("blockDim");
    return tl_w->bdim;
}
dim3 grid_dim(void) {
    in_kernel("gridDim");
    return tl_w->gdim;
}

} // namespace cuemu
