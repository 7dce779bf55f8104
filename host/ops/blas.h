// blas.h: which OpenBLAS kernels the CPU ops run, and making sure they fit the CPU.
//
// A DYNAMIC_ARCH OpenBLAS picks its kernels ("core type") from a table of CPU
// models when it loads. A processor newer than that table gets a generic core:
// Debian's 0.3.21 runs its SSE3 "Prescott" kernels on an AVX-512 Xeon (cpu
// family 6 model 207), 3x slower in prefill, without a word. elastilm does not
// keep a table of CPU models either: it ranks the core OpenBLAS chose by the
// vector instructions its kernels use (SSE, AVX, AVX2, AVX-512) and compares
// that with what CPUID reports. When the core is below the CPU, the process
// re-executes itself once, at start-up, with OPENBLAS_CORETYPE naming the
// best core of the CPU's level (SkylakeX for AVX-512; Haswell, or Zen on AMD,
// for AVX2; SandyBridge for AVX), and says so once in the log. OpenBLAS reads
// OPENBLAS_CORETYPE only when it loads, hence the re-exec; it refuses a core
// the CPU cannot run by itself. A user's OPENBLAS_CORETYPE is never replaced.
#ifndef ELASTILM_BLAS_H
#define ELASTILM_BLAS_H

// Vector instruction levels, in order.
typedef enum { ISA_SSE = 0, ISA_AVX = 1, ISA_AVX2 = 2, ISA_AVX512 = 3 } IsaLevel;

// The level of an OpenBLAS core name ("Prescott", "Haswell", "SkylakeX", ...;
// case-insensitive); ISA_SSE for names it does not know (old or generic cores).
IsaLevel blas_core_level(const char *core);
// The level this CPU runs (CPUID; AVX-512 means F, BW, DQ and VL).
IsaLevel blas_cpu_level(void);
const char *isa_level_name(IsaLevel l);
// The core type elastilm asks for when OpenBLAS chose `core` on a CPU of
// level `cpu` (amd: the CPU is AMD's), or NULL when `core` is good enough.
const char *blas_better_core(const char *core, IsaLevel cpu, int amd);

// "OpenBLAS 0.3.21 ... core=Zen" plus, when elastilm replaced a generic core,
// "(OpenBLAS chose Prescott)"; a static string.
const char *blas_describe(void);

#endif
