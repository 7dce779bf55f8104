// blas.c: the OpenBLAS core check (blas.h).
#include "ops/blas.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "runtime/log.h"
#include "runtime/threads.h"

char *openblas_get_corename(void);
char *openblas_get_config(void);

// Set by the re-executed process: the core OpenBLAS had chosen by itself.
#define REPLACED_VAR "ELASTILM_BLAS_REPLACED"

IsaLevel blas_core_level(const char *core) {
    static const struct {
        const char *name;
        IsaLevel level;
    } cores[] = {
        // AVX-512 kernels
        {"SkylakeX", ISA_AVX512}, {"Cooperlake", ISA_AVX512}, {"SapphireRapids", ISA_AVX512},
        // AVX2 + FMA kernels
        {"Haswell", ISA_AVX2}, {"Zen", ISA_AVX2}, {"Excavator", ISA_AVX2}, {"Skylake", ISA_AVX2},
        // AVX (or AVX + FMA4) kernels
        {"SandyBridge", ISA_AVX}, {"Bulldozer", ISA_AVX}, {"Piledriver", ISA_AVX}, {"Steamroller", ISA_AVX},
    };
    if (core)
        for (size_t i = 0; i < sizeof cores / sizeof *cores; i++)
            if (strcasecmp(core, cores[i].name) == 0) return cores[i].level;
    return ISA_SSE; // Prescott, Core2, Penryn, Nehalem, Atom, Opteron, Barcelona, ..., unknown names
}

IsaLevel blas_cpu_level(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl"))
        return ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return ISA_AVX2;
    if (__builtin_cpu_supports("avx")) return ISA_AVX;
    return ISA_SSE;
}

const char *isa_level_name(IsaLevel l) {
    static const char *const names[] = {"SSE", "AVX", "AVX2", "AVX-512"};
    return l >= ISA_SSE && l <= ISA_AVX512 ? names[l] : "?";
}

const char *blas_better_core(const char *core, IsaLevel cpu, int amd) {
    if (blas_core_level(core) >= cpu) return NULL;
    switch (cpu) {
    case ISA_AVX512: return "SkylakeX";
    case ISA_AVX2: return amd ? "Zen" : "Haswell";
    case ISA_AVX: return "SandyBridge";
    default: return NULL;
    }
}

// The core OpenBLAS had chosen before this process re-executed itself ("" if
// it did not): copied from REPLACED_VAR, which is then removed from the
// environment so that child processes do not claim the replacement too.
static char g_replaced[64];

const char *blas_describe(void) {
    static char buf[512];
    const char *was = g_replaced;
    char *config = openblas_get_config(), *core = openblas_get_corename();
    int n = snprintf(buf, sizeof buf, "%s core=%s", config ? config : "OpenBLAS", core ? core : "?");
    if (was && *was && n > 0 && (size_t)n < sizeof buf)
        snprintf(buf + n, sizeof buf - (size_t)n, " (OpenBLAS chose %s: replaced)", was);
    return buf;
}

// The executable's initializers run after those of the libraries it links,
// so OpenBLAS has chosen its core by now and nothing of ours has started.
// ELASTILM_TEST_BLAS_GENERIC=1 makes the check treat the chosen core as a
// generic one (the tests use it: the machines they run on are detected well).
__attribute__((constructor)) static void blas_check_core(int argc, char **argv, char **envp) {
    (void)argc, (void)envp;
    const char *replaced = getenv(REPLACED_VAR);
    if (replaced && *replaced) { // the re-executed process: say it once
        snprintf(g_replaced, sizeof g_replaced, "%s", replaced);
        unsetenv(REPLACED_VAR);
        // Said on a terminal; elsewhere (pipes, tests that expect one line of
        // stderr, batch logs) at debug level (ELASTILM_LOG=debug): --version
        // reports the replacement in any case.
        log_msg(isatty(STDERR_FILENO) ? LOG_INFO : LOG_DEBUG,
                "OpenBLAS chose its %s kernels on a CPU with %s; running with OPENBLAS_CORETYPE=%s "
                "(set OPENBLAS_CORETYPE yourself to choose)", g_replaced, isa_level_name(blas_cpu_level()),
                openblas_get_corename());
        return;
    }
    if (getenv("OPENBLAS_CORETYPE") || !argv || getauxval(AT_SECURE)) return; // the user's choice stands
    const char *core = openblas_get_corename();
    const char *test = getenv("ELASTILM_TEST_BLAS_GENERIC");
    if (test && strcmp(test, "1") == 0) core = "Prescott";
    __builtin_cpu_init();
    const char *better = blas_better_core(core, blas_cpu_level(), __builtin_cpu_is("amd"));
    if (!better) return;
    if (!threads_can_reexec()) { // a loader or valgrind runs us: only say it
        log_warn("OpenBLAS runs its %s kernels on a CPU with %s; set OPENBLAS_CORETYPE=%s for its faster ones", core,
                 isa_level_name(blas_cpu_level()), better);
        return;
    }
    if (setenv("OPENBLAS_CORETYPE", better, 1) != 0 || setenv(REPLACED_VAR, core, 1) != 0) return;
    fflush(NULL);
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE"); // still this process: go on with the core OpenBLAS chose
    unsetenv(REPLACED_VAR);
    log_warn("OpenBLAS runs its %s kernels on a CPU with %s (re-executing with OPENBLAS_CORETYPE=%s failed)", core,
             isa_level_name(blas_cpu_level()), better);
}
