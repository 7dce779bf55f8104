// The memory checks of the CUDA-on-CPU emulator (tests/cuemu): the per-worker
// shared-memory arena (NaN-filled, ASan-poisoned gaps between variables), the race
// shadow over it, and the device-memory check of every other kernel access; the
// -fsanitize-coverage=trace-loads,trace-stores callbacks that feed both.
#include "state.h"

#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CUEMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace cuemu {

// ---- shared memory -----------------------------------------------------------------------------

void arena_reset(Worker *w, size_t dyn) {
    if (!w->arena) {
        w->arena = (char *)aligned_alloc(256, ARENA_BYTES);
        w->shadow = (Shadow *)calloc(ARENA_BYTES / 4, sizeof(Shadow));
        if (!w->arena || !w->shadow) {
            fprintf(stderr, "cuemu: out of memory for a shared-memory arena\n");
            abort();
        }
#ifdef CUEMU_ASAN
        ASAN_POISON_MEMORY_REGION(w->arena, ARENA_BYTES);
#endif
    }
#ifdef CUEMU_ASAN
    if (w->arena_used > 0) ASAN_POISON_MEMORY_REGION(w->arena, w->arena_used);
#endif
    w->vars.clear();
    w->dyn_bytes = dyn;
    w->static_bytes = 0;
    w->arena_used = ARENA_DYN_OFFSET + dyn;
    if (dyn) {
        char *p = w->arena + ARENA_DYN_OFFSET;
#ifdef CUEMU_ASAN
        ASAN_UNPOISON_MEMORY_REGION(p, dyn);
#endif
        memset(p, 0xff, dyn); // NaN in f32, f64, f16 and bf16; -1 in integers
    }
    w->block_serial++;
    if (w->block_serial == 0) { // wrapped: forget every shadow entry
        memset(w->shadow, 0, (ARENA_BYTES / 4) * sizeof(Shadow));
        w->block_serial = 1;
    }
    tl_arena = (uintptr_t)w->arena;
    tl_arena_len = ARENA_BYTES;
}

void *dynamic_shared(Site s) {
    ThreadState *t = current(s, "extern __shared__");
    (void)t;
    Worker *w = tl_w;
    return w->arena + ARENA_DYN_OFFSET;
}

void *static_shared(const void *tag, size_t bytes, size_t align, Site s, const char *name) {
    current(s, "__shared__");
    Worker *w = tl_w;
    for (const SharedVar &v : w->vars)
        if (v.tag == tag) return v.p;
    if (align < 16) align = 16;
    size_t off = (w->arena_used + ARENA_GAP + align - 1) / align * align;
    w->static_bytes += bytes;
    if (w->static_bytes > STATIC_SMEM_MAX)
        fail(s, "__shared__ %s: the block's static shared memory reaches %zu bytes, past the 48 KiB a kernel may declare",
             name, w->static_bytes);
    size_t limit = func_max_dynamic_smem(w->launch->fn);
    size_t total_limit = limit > (size_t)SMEM_DEFAULT ? limit : (size_t)SMEM_DEFAULT;
    if (w->static_bytes + w->dyn_bytes > total_limit)
        fail(s, "__shared__ %s: static (%zu) + dynamic (%zu) shared memory exceed the %zu bytes this kernel may use", name,
             w->static_bytes, w->dyn_bytes, total_limit);
    if (off + bytes > ARENA_BYTES) fail(s, "__shared__ %s: the emulator's shared-memory arena is full", name);
    char *p = w->arena + off;
#ifdef CUEMU_ASAN
    ASAN_UNPOISON_MEMORY_REGION(p, bytes);
#endif
    memset(p, 0xff, bytes);
    w->arena_used = off + bytes;
    w->vars.push_back(SharedVar{tag, p, bytes, name});
    return p;
}

// "the dynamic shared memory + 40" or "__shared__ part + 8"
static void describe_shared(Worker *w, uintptr_t a, char *buf, size_t n) {
    char *p = (char *)a;
    for (const SharedVar &v : w->vars)
        if (p >= v.p && p < v.p + v.bytes) {
            snprintf(buf, n, "__shared__ %s + %zu bytes", v.name, (size_t)(p - v.p));
            return;
        }
    char *d = w->arena + ARENA_DYN_OFFSET;
    if (p >= d && p < d + w->dyn_bytes) {
        snprintf(buf, n, "the dynamic shared memory + %zu bytes (of %zu)", (size_t)(p - d), w->dyn_bytes);
        return;
    }
    snprintf(buf, n, "shared memory outside every variable");
}

// ---- race checks on shared memory ----------------------------------------------------------------

static inline bool ordered(Worker *w, int other, uint32_t B, uint32_t G, const ThreadState *t) {
    if (B < w->epoch) return true;
    if (other >= 0 && other / 32 == t->warp && G < w->warp_gen[t->warp]) return true;
    return false;
}

// A race report at this access (pc, or site for an atomic) against the word's other access
// (other_pc, or other_file:other_line); other < 0: a read of a word nothing wrote.
[[noreturn]] static void race_report(Worker *w, ThreadState *t, uintptr_t a, const void *pc, const Site *site, bool is_write,
                                     const char *kind, int other, const void *other_pc, const char *other_file,
                                     int other_line, bool other_write) {
    char msg[1024], there[256], what[160], who[64];
    describe_shared(w, a, what, sizeof what);
    if (other < 0) {
        snprintf(msg, sizeof msg,
                 "shared-memory %s: %s %s, which no thread of this block has written (it holds the emulator's NaN fill)",
                 kind, is_write ? "writes" : "reads", what);
    } else {
        if (other_pc) describe_pc(other_pc, there, sizeof there);
        else snprintf(there, sizeof there, "%s:%d", other_file, other_line);
        thread_desc(w, other, who, sizeof who);
        snprintf(msg, sizeof msg, "shared-memory race (%s): this thread %s %s; %s %s it at %s with no __syncthreads() between%s",
                 kind, is_write ? "writes" : "reads", what, who, other_write ? "wrote" : "read", there,
                 other / 32 == t->warp ? " (nor a __syncwarp: the two are in one warp, and shuffles, votes and wmma "
                                         "operations do not order memory)"
                                       : "");
    }
    if (site) fail(*site, "%s", msg);
    fail_pc(pc, "%s", msg);
}

// The read-only segments of the program and its libraries (code, constants): what a kernel
// may read besides device memory (UBSan's function-type check reads the callee's prefix;
// constant tables in device code live there).
struct Ranges {
    int n;
    uintptr_t lo[128], hi[128];
};
static Ranges g_ro;
static pthread_once_t g_ro_once = PTHREAD_ONCE_INIT;

static int ro_segment(struct dl_phdr_info *info, size_t, void *) {
    for (int i = 0; i < info->dlpi_phnum && g_ro.n < 128; i++) {
        const ElfW(Phdr) &ph = info->dlpi_phdr[i];
        // code and constants, and what is read-only after relocation (type_info objects, vtables)
        if (!(ph.p_type == PT_LOAD && !(ph.p_flags & PF_W)) && ph.p_type != PT_GNU_RELRO) continue;
        g_ro.lo[g_ro.n] = info->dlpi_addr + ph.p_vaddr;
        g_ro.hi[g_ro.n] = info->dlpi_addr + ph.p_vaddr + ph.p_memsz;
        g_ro.n++;
    }
    return 0;
}
static void ro_init(void) { dl_iterate_phdr(ro_segment, NULL); }

static bool read_only_image(uintptr_t a) {
    pthread_once(&g_ro_once, ro_init);
    for (int i = 0; i < g_ro.n; i++)
        if (a >= g_ro.lo[i] && a < g_ro.hi[i]) return true;
    return false;
}

// A kernel's access outside its shared memory: its own stack, the launch's parameters, a
// live device allocation (a few recently hit ones cached per worker) or, for a read, the
// program's read-only segments; anything else is host memory a GPU could not reach.
static void global_access(uintptr_t a, size_t n, const void *pc, bool is_write) {
    ThreadState *t = tl_t;
    Worker *w = tl_w;
    if (!t || !w) return;
    if (a - (uintptr_t)t->stack < g_cfg.stack_bytes) return;
    if (a - w->param_lo < w->param_len) return;
    uint64_t frees = device_free_count();
    if (frees != w->alloc_frees) {
        memset(w->alloc_len, 0, sizeof w->alloc_len);
        w->alloc_frees = frees;
    }
    for (int i = 0; i < 4; i++)
        if (a - w->alloc_lo[i] < w->alloc_len[i]) return;
    if (!is_write && read_only_image(a)) return;
    uintptr_t lo;
    size_t len;
    if (device_alloc_of(a, &lo, &len)) {
        w->alloc_lo[w->alloc_next] = lo;
        w->alloc_len[w->alloc_next] = len;
        w->alloc_next = (w->alloc_next + 1) & 3;
        return;
    }
#ifdef CUEMU_ASAN
    // a local moved to ASan's fake stack (detect_stack_use_after_return) is the thread's own
    void *fake = __asan_get_current_fake_stack();
    if (fake && __asan_addr_is_in_fake_stack(fake, (void *)a, NULL, NULL)) return;
#endif
    fail_pc(pc, "the kernel %s %zu bytes at %p, which is neither device memory (cudaMalloc), shared memory nor the "
            "thread's own: a host pointer passed to a kernel (a GPU faults: cudaErrorIllegalAddress)",
            is_write ? "writes" : "reads", n, (void *)a);
}

enum Access { A_READ, A_WRITE, A_ATOMIC };

// The race check of one access of `bytes` at a (in the arena) by the running thread, or
// by lane `lane_override` of its warp (the wmma collectives, run by their last lane).
// An atomic is unordered with nothing but plain accesses, against which it counts as a write.
static void race_access(uintptr_t a, size_t bytes, const void *pc, const Site *site, Access kind, int lane_override) {
    Worker *w = tl_w;
    ThreadState *t = tl_t;
    if (!t || !w) return;
    if (lane_override >= 0) t = w->threads[(t->warp * 32) + lane_override];
    const bool is_write = kind != A_READ;
    const int me = t->linear;
    size_t off = a - (uintptr_t)w->arena;
    for (size_t word = off / 4, end = (off + bytes + 3) / 4; word < end && word < ARENA_BYTES / 4; word++) {
        Shadow &sh = w->shadow[word];
        uintptr_t wa = (uintptr_t)w->arena + word * 4;
        if (sh.gen != w->block_serial) {
            if (kind != A_WRITE) race_report(w, t, wa, pc, site, false, "uninitialised read", -1, NULL, NULL, 0, false);
            sh.gen = w->block_serial;
            sh.wt = sh.rt = -1;
        }
        const bool w_conflicts = kind != A_ATOMIC || !sh.w_atomic; // atomics among themselves are ordered
        if (sh.wt >= 0 && sh.wt != me && w_conflicts && !ordered(w, sh.wt, sh.wB, sh.wG, t))
            race_report(w, t, wa, pc, site, is_write,
                        kind == A_READ ? "read after write" : kind == A_WRITE ? "write after write" : "atomic after write",
                        sh.wt, sh.wpc, sh.wfile, sh.wline, true);
        if (is_write && sh.rt >= 0 && sh.rt != me && !ordered(w, sh.rt, sh.rB, sh.rG, t))
            race_report(w, t, wa, pc, site, true, kind == A_WRITE ? "write after read" : "atomic after read", sh.rt, sh.rpc,
                        sh.rfile, sh.rline, false);
        // this access becomes the word's last read or write
        int16_t *who = is_write ? &sh.wt : &sh.rt;
        uint32_t *B = is_write ? &sh.wB : &sh.rB, *G = is_write ? &sh.wG : &sh.rG;
        const void **where = is_write ? &sh.wpc : &sh.rpc;
        *who = (int16_t)me;
        *B = w->epoch;
        *G = w->warp_gen[t->warp];
        *where = pc;
        (is_write ? sh.wfile : sh.rfile) = site ? site->file : NULL;
        (is_write ? sh.wline : sh.rline) = site ? site->line : 0;
        if (is_write) {
            sh.w_atomic = kind == A_ATOMIC;
            sh.rt = -1;
        }
    }
}

static inline bool in_arena(const void *p) { return (uintptr_t)p - tl_arena < tl_arena_len; }

void note_read(const void *p, size_t bytes, int lane, Site s) {
    if (g_cfg.race && in_arena(p)) race_access((uintptr_t)p, bytes, NULL, &s, A_READ, lane);
}
void note_write(const void *p, size_t bytes, int lane, Site s) {
    if (g_cfg.race && in_arena(p)) race_access((uintptr_t)p, bytes, NULL, &s, A_WRITE, lane);
}
void note_atomic(const void *p, size_t bytes, Site s) {
    if (g_cfg.race && in_arena(p)) race_access((uintptr_t)p, bytes, NULL, &s, A_ATOMIC, -1);
}

} // namespace cuemu

namespace cuemu {
// One load or store of kernel code: shared memory goes to the race check, anything else
// (while a kernel runs on this thread) to the device-memory check.
static inline void kernel_access(const void *p, size_t n, const char *pc, bool is_write) {
    if (in_arena(p)) {
        if (g_cfg.race) race_access((uintptr_t)p, n, pc, NULL, is_write ? A_WRITE : A_READ, -1);
    } else if (tl_t) {
        global_access((uintptr_t)p, n, pc, is_write);
    }
}
} // namespace cuemu

// The callbacks of -fsanitize-coverage=trace-loads,trace-stores (clang) in the emulated
// sources: every load and store, with the address of the instruction after it.
#define CUEMU_COV(n, T)                                                                                              \
    extern "C" void __sanitizer_cov_load##n(T *p) {                                                                  \
        cuemu::kernel_access(p, n, (const char *)__builtin_return_address(0) - 1, false);                            \
    }                                                                                                                 \
    extern "C" void __sanitizer_cov_store##n(T *p) {                                                                 \
        cuemu::kernel_access(p, n, (const char *)__builtin_return_address(0) - 1, true);                             \
    }
CUEMU_COV(1, uint8_t)
CUEMU_COV(2, uint16_t)
CUEMU_COV(4, uint32_t)
CUEMU_COV(8, uint64_t)
CUEMU_COV(16, __int128)
