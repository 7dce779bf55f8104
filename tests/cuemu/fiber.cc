// The fibers of the CUDA-on-CPU emulator (tests/cuemu): one per CUDA thread, on an
// mmap'd stack below a guard page, switched by a few instructions of assembly on
// x86-64 (callee-saved registers, MXCSR, the x87 control word) or by ucontext,
// with AddressSanitizer's fiber annotations around every switch.
#include "state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef CUEMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace cuemu {

// ---- context switch -------------------------------------------------------------------------

#if CUEMU_ASM_SWITCH
// cuemu_switch(save, to): pushes the callee-saved registers, MXCSR and the x87 control
// word on the current stack, stores the stack pointer in *save, then loads `to`'s.
extern "C" void cuemu_switch(void **save, void *to);
asm(R"(
    .text
    .globl cuemu_switch
    .type cuemu_switch, @function
cuemu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size cuemu_switch, .-cuemu_switch
    .section .note.GNU-stack,"",@progbits
    .text
)");
#endif


void switch_to(Worker *w, ThreadState *from, ThreadState *to, bool dying) {
    w->n_switches++;
    tl_t = to;
#ifdef CUEMU_ASAN
    const void *bottom = to ? (const void *)to->stack : w->main_bottom;
    size_t size = to ? g_cfg.stack_bytes : w->main_size;
    void **save = dying ? NULL : from ? &from->fake_stack : &w->main_fake_stack;
    __sanitizer_start_switch_fiber(save, bottom, size);
#else
    (void)dying;
#endif
#if CUEMU_ASM_SWITCH
    cuemu_switch(from ? &from->sp : &w->main_sp, to ? to->sp : w->main_sp);
#else
    swapcontext(from ? &from->uc : &w->main_uc, to ? &to->uc : &w->main_uc);
#endif
    // resumed: tl_w is this worker's (a block never moves between host threads)
#ifdef CUEMU_ASAN
    __sanitizer_finish_switch_fiber(from ? from->fake_stack : w->main_fake_stack, NULL, NULL);
#endif
}

static void fiber_main(void) {
    Worker *w = tl_w;
    ThreadState *t = tl_t;
#ifdef CUEMU_ASAN
    const void *bottom;
    size_t size;
    __sanitizer_finish_switch_fiber(NULL, &bottom, &size);
    if (!w->main_bottom) { // the first switch came from the worker's own stack
        w->main_bottom = bottom;
        w->main_size = size;
    }
#endif
    w->body(w->arg);
    thread_exit(w, t);
    fprintf(stderr, "cuemu: internal error: a finished fiber was resumed\n");
    abort();
}

#if !CUEMU_ASM_SWITCH
static void fiber_main_uc(void) { fiber_main(); }
#endif

ThreadState *thread_new(void) {
    ThreadState *t = (ThreadState *)calloc(1, sizeof *t);
    size_t page = (size_t)sysconf(_SC_PAGESIZE), bytes = cfg().stack_bytes + page;
    char *m = (char *)mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (!t || m == MAP_FAILED) {
        fprintf(stderr, "cuemu: out of memory for a fiber stack\n");
        abort();
    }
    mprotect(m, page, PROT_NONE); // a stack overflow faults here
    t->stack = m + page;
    return t;
}

// Sets t up to start the kernel from the top of its stack.
void thread_start(ThreadState *t) {
#ifdef CUEMU_ASAN
    ASAN_UNPOISON_MEMORY_REGION(t->stack, g_cfg.stack_bytes); // frames of a previous occupant
#endif
    t->fake_stack = NULL;
#if CUEMU_ASM_SWITCH
    uintptr_t top = ((uintptr_t)t->stack + g_cfg.stack_bytes) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)top;
    *--sp = 0;                       // fiber_main's return address (never used)
    *--sp = (uint64_t)&fiber_main;   // cuemu_switch's ret goes here
    for (int i = 0; i < 6; i++) *--sp = 0; // rbp (0 ends the frame chain), rbx, r12-r15
    uint32_t mxcsr;
    uint16_t fpucw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    --sp;
    memcpy(sp, &mxcsr, 4);
    memcpy((char *)sp + 4, &fpucw, 2);
    t->sp = sp;
#else
    getcontext(&t->uc);
    t->uc.uc_stack.ss_sp = t->stack;
    t->uc.uc_stack.ss_size = g_cfg.stack_bytes;
    t->uc.uc_link = NULL;
    makecontext(&t->uc, fiber_main_uc, 0);
#endif
}

} // namespace cuemu
