# craft: C engine + LuaJIT host.  `make` builds build/libcraft.{a,so} and build/craft.
# No fast-math anywhere in the reference build.
PREFIX   ?= /usr/local
CC       ?= gcc
BUILD    ?= build
OPT      ?= -O2 -march=native
SAN      ?=
# LuaJIT's flags from pkg-config unless given (bench/gpu.sh gives them when it builds against its
# bundle on a machine without pkg-config)
LUAJIT_CFLAGS ?= $(shell pkg-config --cflags luajit)
LUAJIT_LIBS   ?= $(shell pkg-config --libs luajit)
CFLAGS_BASE = -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -fPIC -fopenmp \
              -Wall -Wextra -Wno-unused-parameter -Wshadow -g $(OPT) $(SAN) \
              -Iengine -I$(BUILD)/gen $(LUAJIT_CFLAGS) -I/usr/include/stb \
              -DCL_TARGET_OPENCL_VERSION=120
CFLAGS  += $(CFLAGS_BASE)
LIBS     = -ldnnl -lzip -lz -ljansson -lcsv -lstb -lm -lpthread
# MPI for data-parallel runs (engine/dist): on when mpicc (Open MPI's or MPICH's wrapper) and
# mpi.h are found; `make MPI=0` builds without it (then every run is one rank).
MPICC ?= mpicc
ifeq ($(origin MPI_CFLAGS),undefined)
MPI_CFLAGS := $(shell $(MPICC) --showme:compile 2>/dev/null || $(MPICC) -compile_info 2>/dev/null | \
  tr ' ' '\n' | grep -E '^-(I|D|pthread)' | tr '\n' ' ')
endif
ifeq ($(origin MPI_LIBS),undefined)
MPI_LIBS := $(shell $(MPICC) --showme:link 2>/dev/null || $(MPICC) -link_info 2>/dev/null | \
  tr ' ' '\n' | grep -E '^-(L|l|Wl|pthread)' | tr '\n' ' ')
endif
ifeq ($(origin MPI),undefined)
MPI := $(shell printf '\043include <mpi.h>\nint main(void){return 0;}\n' | \
  $(CC) -x c - -fsyntax-only $(MPI_CFLAGS) 2>/dev/null && [ -n "$(strip $(MPI_LIBS))" ] && echo 1 || echo 0)
endif
ifeq ($(MPI),1)
LIBS    += $(MPI_LIBS)
DIST_CFLAGS = -DCRAFT_MPI $(MPI_CFLAGS)
endif
LUALIBS  = $(LUAJIT_LIBS) -ledit
LDFLAGS += -fopenmp $(SAN)

# engine/ is in folders by layer (engine/README.md): core, cpu, cl, io, text, clinical, dist; the
# public header craft.h and the host main.c sit at the top.
ENGINE_DIRS := core cpu cl io text clinical dist
ENGINE_HDR := engine/craft.h $(foreach d,$(ENGINE_DIRS),$(wildcard engine/$(d)/*.h))
LIB_SRC    := $(sort $(filter-out engine/main.c,$(wildcard engine/*.c)) $(foreach d,$(ENGINE_DIRS),$(wildcard engine/$(d)/*.c)))
LIB_OBJ    := $(patsubst engine/%.c,$(BUILD)/obj/%.o,$(LIB_SRC)) $(BUILD)/obj/gen_cdef.o
# ar keeps members by file name: two sources with one name in different folders would clash
DUP_SRC    := $(shell printf '%s\n' $(notdir $(LIB_SRC)) | sort | uniq -d)
$(if $(DUP_SRC),$(error engine/: more than one source file named $(DUP_SRC); names must be unique across folders))
CL_SRC     := $(sort $(wildcard kernels_cl/*.cl))
TEST_SRC   := $(sort $(wildcard tests/c/test_*.c))
TEST_BIN   := $(patsubst tests/c/%.c,$(BUILD)/tests/%,$(TEST_SRC)) $(BUILD)/tests/test_null_args

.PHONY: all test test-c test-lua bench install clean setup asan fuzz fuzz-build fuzz-lib
all: $(BUILD)/libcraft.a $(BUILD)/libcraft.so $(BUILD)/craft $(TEST_BIN)

$(BUILD)/obj/%.o: engine/%.c $(ENGINE_HDR) | $(BUILD)/gen/cdef.inc
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@
# only engine/dist sees mpi.h; a change of MPI=0/1 rebuilds it (the flag file records the choice)
$(BUILD)/obj/dist/%.o: engine/dist/%.c $(ENGINE_HDR) $(BUILD)/gen/mpi.$(MPI) | $(BUILD)/gen/cdef.inc
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DIST_CFLAGS) -c $< -o $@
$(BUILD)/gen/mpi.$(MPI):
	@mkdir -p $(dir $@)
	rm -f $(BUILD)/gen/mpi.*; touch $@

# The public header, stripped of preprocessor lines, is embedded so that the Lua
# binding can ffi.cdef exactly what the C side declares.
$(BUILD)/gen/cdef.inc: engine/craft.h tools/embed_header.sh
	@mkdir -p $(dir $@)
	sh tools/embed_header.sh engine/craft.h > $@
$(BUILD)/obj/gen_cdef.o: tools/gen_cdef.c $(BUILD)/gen/cdef.inc
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# The OpenCL C kernels, embedded as strings (engine/cl/cl_runtime.c includes the generated file).
# libOpenCL and libclblast are dlopen'ed on first device use, so libcraft loads without them.
$(BUILD)/gen/cl_sources.inc: $(CL_SRC) tools/embed_cl.sh
	@mkdir -p $(dir $@)
	sh tools/embed_cl.sh $(CL_SRC) > $@
$(BUILD)/obj/cl/cl_runtime.o: $(BUILD)/gen/cl_sources.inc

$(BUILD)/libcraft.a: $(LIB_OBJ)
	rm -f $@; ar rcs $@ $^
$(BUILD)/libcraft.so: $(LIB_OBJ)
	$(CC) -shared -o $@ $^ $(LDFLAGS) $(LIBS)
$(BUILD)/craft: $(BUILD)/obj/main.o $(BUILD)/libcraft.a
	$(CC) -o $@ $(BUILD)/obj/main.o -Wl,-E -Wl,--whole-archive $(BUILD)/libcraft.a -Wl,--no-whole-archive $(LDFLAGS) $(LIBS) $(LUALIBS)

$(BUILD)/tests/%: tests/c/%.c $(wildcard tests/c/*.h) $(BUILD)/libcraft.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/c $< -o $@ $(BUILD)/libcraft.a $(LDFLAGS) $(LIBS)

# Every function of the public header that takes a tensor, called with NULL tensors: generated
# from the header, so a new function is covered as soon as it is declared.
$(BUILD)/gen/test_null_args.c: engine/craft.h tools/gen_null_test.lua
	@mkdir -p $(dir $@)
	luajit tools/gen_null_test.lua engine/craft.h > $@
$(BUILD)/tests/test_null_args: $(BUILD)/gen/test_null_args.c $(BUILD)/libcraft.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< -o $@ $(BUILD)/libcraft.a $(LDFLAGS) $(LIBS)

# Hashes of every CPU op's outputs and gradients, to compare two versions bit for bit
# (tools/op_digest.c; not part of the tests: the hashes are machine-specific).
$(BUILD)/op_digest: tools/op_digest.c $(BUILD)/libcraft.a
	$(CC) $(CFLAGS) $< -o $@ $(BUILD)/libcraft.a $(LDFLAGS) $(LIBS)

test: all fuzz-build
	FUZZ_DIR=build-fuzz FUZZ_SECONDS=$(FUZZ_SHORT) sh tests/run.sh $(BUILD)

BENCH_SRC := $(sort $(wildcard bench/bench_*.c))
BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/%,$(BENCH_SRC))
$(BUILD)/bench_%: bench/bench_%.c bench/bench_common.h $(BUILD)/libcraft.a
	$(CC) $(CFLAGS) $< -o $@ $(BUILD)/libcraft.a $(LDFLAGS) $(LIBS)
bench: all $(BENCH_BIN)
	sh bench/run.sh $(BUILD)

setup:
	sh tools/setup.sh

# The C tests and a short Lua recipe under AddressSanitizer + UBSan (gcc); any report fails.
# OpenCL there is every ICD but Mesa's (clover, rusticl): they leak when the loader opens them, in
# frames LeakSanitizer's fast unwinder cannot name, so no suppression can match them.
asan:
	$(MAKE) BUILD=build-asan OPT="-O1" SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" all
	rm -rf build-asan/icd && mkdir -p build-asan/icd
	for f in /etc/OpenCL/vendors/*.icd; do case "$$f" in *mesa*|*rusticl*) ;; *) [ -f "$$f" ] && cp "$$f" build-asan/icd/ ;; esac; done; true
	OCL_ICD_VENDORS=$(CURDIR)/build-asan/icd ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp sh tests/run.sh build-asan

# Fuzz targets: tests/fuzz/fuzz_<name>.c, libFuzzer + ASan + UBSan with clang. `make fuzz` runs
# each for FUZZ_SECONDS (default 600) on a copy of its seed corpus; `make test` runs each for
# FUZZ_SHORT seconds.
FUZZ_SHORT   ?= 5
FUZZ_SECONDS ?= 600
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN := $(patsubst tests/fuzz/%.c,build-fuzz/%,$(FUZZ_SRC))
fuzz-build: fuzz-lib
	@$(MAKE) --no-print-directory $(FUZZ_BIN)
fuzz-lib:
	@$(MAKE) --no-print-directory BUILD=build-fuzz/lib CC=clang OPT="-O1" \
	  SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" build-fuzz/lib/libcraft.a
build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c build-fuzz/lib/libcraft.a
	clang $(CFLAGS_BASE) -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer $< -o $@ build-fuzz/lib/libcraft.a -fopenmp $(LIBS)
fuzz: fuzz-build
	sh tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/share/craft/lua
	install -m 755 $(BUILD)/craft $(DESTDIR)$(PREFIX)/bin/craft
	install -m 644 $(BUILD)/libcraft.a $(BUILD)/libcraft.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 engine/craft.h $(DESTDIR)$(PREFIX)/include/craft.h
	cp -r lua/craft $(DESTDIR)$(PREFIX)/share/craft/lua/
	sed -e 's|@PREFIX@|$(PREFIX)|' tools/craft.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/craft.pc

clean:
	rm -rf $(BUILD) build-asan build-fuzz
