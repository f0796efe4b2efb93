# craft: C engine + LuaJIT host.  `make` builds build/libcraft.{a,so} and build/craft.
# No fast-math anywhere in the reference build.
PREFIX   ?= /usr/local
CC       ?= gcc
BUILD    ?= build
OPT      ?= -O2 -march=native
SAN      ?=
CFLAGS_BASE = -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -fPIC -fopenmp \
              -Wall -Wextra -Wno-unused-parameter -Wshadow -g $(OPT) $(SAN) \
              -Iengine -I$(BUILD)/gen $(shell pkg-config --cflags luajit) -I/usr/include/stb \
              -DCL_TARGET_OPENCL_VERSION=120
CFLAGS  += $(CFLAGS_BASE)
LIBS     = -ldnnl -lzip -lz -ljansson -lcsv -lstb -lm -lpthread
LUALIBS  = $(shell pkg-config --libs luajit) -ledit
LDFLAGS += -fopenmp $(SAN)

ENGINE_SRC := $(sort $(wildcard engine/*.c))
LIB_SRC    := $(filter-out engine/main.c,$(ENGINE_SRC))
LIB_OBJ    := $(patsubst engine/%.c,$(BUILD)/obj/%.o,$(LIB_SRC)) $(BUILD)/obj/gen_cdef.o
CL_SRC     := $(sort $(wildcard kernels_cl/*.cl))
TEST_SRC   := $(sort $(wildcard tests/c/test_*.c))
TEST_BIN   := $(patsubst tests/c/%.c,$(BUILD)/tests/%,$(TEST_SRC))

.PHONY: all test test-c test-lua bench install clean setup asan fuzz
all: $(BUILD)/libcraft.a $(BUILD)/libcraft.so $(BUILD)/craft $(TEST_BIN)

$(BUILD)/obj/%.o: engine/%.c engine/*.h | $(BUILD)/gen/cdef.inc
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# The public header, stripped of preprocessor lines, is embedded so that the Lua
# binding can ffi.cdef exactly what the C side declares.
$(BUILD)/gen/cdef.inc: engine/craft.h tools/embed_header.sh
	@mkdir -p $(dir $@)
	sh tools/embed_header.sh engine/craft.h > $@
$(BUILD)/obj/gen_cdef.o: tools/gen_cdef.c $(BUILD)/gen/cdef.inc
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libcraft.a: $(LIB_OBJ)
	rm -f $@; ar rcs $@ $^
$(BUILD)/libcraft.so: $(LIB_OBJ)
	$(CC) -shared -o $@ $^ $(LDFLAGS) $(LIBS)
$(BUILD)/craft: $(BUILD)/obj/main.o $(BUILD)/libcraft.a
	$(CC) -o $@ $(BUILD)/obj/main.o -Wl,-E -Wl,--whole-archive $(BUILD)/libcraft.a -Wl,--no-whole-archive $(LDFLAGS) $(LIBS) $(LUALIBS)

$(BUILD)/tests/%: tests/c/%.c tests/c/check.h $(BUILD)/libcraft.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/c $< -o $@ $(BUILD)/libcraft.a $(LDFLAGS) $(LIBS)

test: all
	sh tests/run.sh $(BUILD)

bench: all
	sh bench/run.sh $(BUILD)

setup:
	sh tools/setup.sh

asan:
	$(MAKE) BUILD=build-asan OPT="-O1" SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" test

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/share/craft/lua
	install -m 755 $(BUILD)/craft $(DESTDIR)$(PREFIX)/bin/craft
	install -m 644 $(BUILD)/libcraft.a $(BUILD)/libcraft.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 engine/craft.h $(DESTDIR)$(PREFIX)/include/craft.h
	cp -r lua/craft $(DESTDIR)$(PREFIX)/share/craft/lua/
	sed -e 's|@PREFIX@|$(PREFIX)|' tools/craft.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/craft.pc

clean:
	rm -rf $(BUILD) build-asan
