// The OpenBLAS core check (host/ops/blas.c): the ranking of core names, the
// choice of a better core, and the re-execution that applies it.
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/blas.h"
#include "test_util.h"

Test(blas, core_levels_and_choice) {
    static const struct {
        const char *core;
        IsaLevel level;
    } cases[] = {
        {"Prescott", ISA_SSE},     {"Core2", ISA_SSE},        {"Nehalem", ISA_SSE},   {"Barcelona", ISA_SSE},
        {"Unknown", ISA_SSE},      {"", ISA_SSE},             {"SandyBridge", ISA_AVX}, {"Bulldozer", ISA_AVX},
        {"Haswell", ISA_AVX2},     {"Zen", ISA_AVX2},         {"HASWELL", ISA_AVX2},  {"SkylakeX", ISA_AVX512},
        {"Cooperlake", ISA_AVX512}, {"SapphireRapids", ISA_AVX512},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        cr_expect_eq(blas_core_level(cases[i].core), cases[i].level, "%s", cases[i].core);
    cr_expect_eq(blas_core_level(NULL), ISA_SSE);

    // the machine: Prescott chosen on an AVX-512 Xeon
    cr_expect_str_eq(blas_better_core("Prescott", ISA_AVX512, 0), "SkylakeX");
    cr_expect_str_eq(blas_better_core("Haswell", ISA_AVX512, 0), "SkylakeX");
    cr_expect_str_eq(blas_better_core("Prescott", ISA_AVX2, 0), "Haswell");
    cr_expect_str_eq(blas_better_core("Prescott", ISA_AVX2, 1), "Zen");
    cr_expect_str_eq(blas_better_core("Core2", ISA_AVX, 0), "SandyBridge");
    // good enough, or nothing better to ask for
    cr_expect_null(blas_better_core("SkylakeX", ISA_AVX512, 0));
    cr_expect_null(blas_better_core("Zen", ISA_AVX2, 1));
    cr_expect_null(blas_better_core("Haswell", ISA_AVX2, 1)); // same level: OpenBLAS's choice stands
    cr_expect_null(blas_better_core("Prescott", ISA_SSE, 0));
    cr_expect_str_eq(isa_level_name(ISA_AVX512), "AVX-512");
}

// Through the binary: with the test hook the core OpenBLAS chose counts as a
// generic one, so the binary re-executes itself with a better core type when
// the CPU has AVX or more, says so once (at debug level when stderr is not a
// terminal), and reports it in --version; a user's OPENBLAS_CORETYPE is kept.
// Without the debug level, nothing is printed beside --version's lines. The
// children run without an inherited OPENBLAS_CORETYPE: on a machine where this
// test binary itself was re-executed with one, they would keep it.
Test(blas, generic_core_is_replaced_at_startup) {
    char cmd[1024], out[8192];
    snprintf(cmd, sizeof cmd, "env -u OPENBLAS_CORETYPE ELASTILM_LOG=debug ELASTILM_TEST_BLAS_GENERIC=1 %s --version", tu_bin());
    cr_assert_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
    const char *blas = strstr(out, "blas: "), *core = blas ? strstr(blas, "core=") : NULL;
    cr_assert(core, "no 'core=' in --version:\n%s", out);
    char name[64] = "";
    sscanf(core + 5, "%63[A-Za-z0-9]", name);
    IsaLevel cpu = blas_cpu_level();
    if (cpu == ISA_SSE) {
        cr_expect_null(strstr(out, "replaced"), "nothing better to choose on an SSE-only CPU:\n%s", out);
        return;
    }
    cr_expect(strstr(out, "(OpenBLAS chose Prescott: replaced)"), "%s", out);
    cr_expect(strstr(out, "running with OPENBLAS_CORETYPE="), "the replacement is not logged:\n%s", out);
    snprintf(cmd, sizeof cmd, "env -u OPENBLAS_CORETYPE ELASTILM_TEST_BLAS_GENERIC=1 %s --version", tu_bin());
    cr_assert_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, "replaced") && !strstr(out, "running with"), "a pipe gets no info line:\n%s", out);
    cr_expect_geq(blas_core_level(name), cpu, "core %s is below the CPU's %s", name, isa_level_name(cpu));

    // the user's setting wins, even a slow one; and no message
    snprintf(cmd, sizeof cmd, "OPENBLAS_CORETYPE=Prescott ELASTILM_TEST_BLAS_GENERIC=1 %s --version", tu_bin());
    cr_assert_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, "core=Prescott") && !strstr(out, "replaced") && !strstr(out, "running with"), "%s", out);
}
