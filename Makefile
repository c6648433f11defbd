# ota: top-level build.
#   make                  build everything into build/
#   make check            build, then run every unit and integration test
#   make demo             install missing build dependencies, build, run the end-to-end demo
#   make install PREFIX=  install binaries, library headers and archives
#   make WERROR=1         warnings are errors
#   make SANITIZE=address,undefined   sanitizer build in its own directory (build-san/)
#   make bench            run the benchmarks (they print figures; they never fail on speed)
#   make fuzz / fuzz-short  libFuzzer harnesses (clang; build-fuzz/), see tools/fuzz/fuzz.mk

PREFIX  ?= /usr/local
CC      ?= cc
PKGS    := libarchive libsodium libcurl libzstd sqlite3 jansson libcrypto
TESTPKGS:= cmocka
SRVPKGS := libmicrohttpd

ifneq ($(SANITIZE),)
BUILD   ?= build-san
SANFLAGS:= -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
else
BUILD   ?= build
SANFLAGS:=
endif

# pkg-config is evaluated lazily, so `make deps` works before the -dev packages exist.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) $(TESTPKGS) $(SRVPKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
TEST_LIBS  = $(shell pkg-config --libs $(TESTPKGS) 2>/dev/null)
SRV_LIBS   = $(shell pkg-config --libs $(SRVPKGS) 2>/dev/null)

WARN    := -Wall -Wextra -Wformat=2 -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wpointer-arith -Wvla -Wnull-dereference -Wdouble-promotion \
           -Wimplicit-fallthrough -Wundef -Wno-unused-parameter
ifeq ($(WERROR),1)
WARN    += -Werror
endif
HARDEN  := -fstack-protector-strong -fPIE
ifeq ($(SANITIZE),)
HARDEN  += -D_FORTIFY_SOURCE=2
endif
OPT     ?= -O2 -g
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(HARDEN) $(SANFLAGS) -MMD -MP \
             -Iformats -Ikeys -Iagent -Ipublisher $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL= -pie -Wl,-z,relro,-z,now $(SANFLAGS) $(LDFLAGS)

# Libraries: every .c in a module folder except main.c. New files need no Makefile edit.
FORMATS_SRC   := $(wildcard formats/*.c)
KEYS_SRC      := $(wildcard keys/*.c)
PUBLISHER_SRC := $(filter-out publisher/main.c,$(wildcard publisher/*.c))
AGENT_SRC     := $(filter-out agent/main.c,$(wildcard agent/*.c))
obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
# keys/tuf.c verifies signatures with keys/ while keys/ uses formats/ for JSON and hashing:
# the archives refer to each other, so the linker scans them as a group.
libgroup = -Wl,--start-group $(1) -Wl,--end-group

LIB_FORMATS   := $(BUILD)/lib/libota_formats.a
LIB_KEYS      := $(BUILD)/lib/libota_keys.a
LIB_PUBLISHER := $(BUILD)/lib/libota_publisher.a
LIB_AGENT     := $(BUILD)/lib/libota_agent.a
ALL_LIBS      := $(LIB_PUBLISHER) $(LIB_AGENT) $(LIB_KEYS) $(LIB_FORMATS)

BINS          := $(BUILD)/bin/ota-publish $(BUILD)/bin/ota-agent
# tools/<name>/*.c builds $(BUILD)/bin/<name> (servers, benchmark helpers, fixture makers).
TOOL_DIRS     := $(patsubst tools/%/,%,$(sort $(dir $(wildcard tools/*/*.c))))
TOOL_DIRS     := $(filter-out fuzz,$(TOOL_DIRS))
TOOLS         := $(addprefix $(BUILD)/bin/,$(TOOL_DIRS))
UNIT_SRC      := $(wildcard tests/unit/test_*.c)
UNIT_BINS     := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

.PHONY: all check unit integration demo deps install clean bench torture fuzz fuzz-short format
all: $(BINS) $(TOOLS) $(UNIT_BINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo '  CC     $<'
	@$(CC) $(CFLAGS_ALL) -c $< -o $@

$(LIB_FORMATS): $(call obj,$(FORMATS_SRC))
$(LIB_KEYS): $(call obj,$(KEYS_SRC))
$(LIB_PUBLISHER): $(call obj,$(PUBLISHER_SRC))
$(LIB_AGENT): $(call obj,$(AGENT_SRC))
$(BUILD)/lib/%.a:
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/bin/ota-publish: $(call obj,publisher/main.c) $(LIB_PUBLISHER) $(LIB_KEYS) $(LIB_FORMATS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(call libgroup,$(filter %.a,$^)) $(PKG_LIBS) -lpthread

$(BUILD)/bin/ota-agent: $(call obj,agent/main.c) $(LIB_AGENT) $(LIB_KEYS) $(LIB_FORMATS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(call libgroup,$(filter %.a,$^)) $(PKG_LIBS) -lpthread

.SECONDEXPANSION:
$(TOOLS): $(BUILD)/bin/%: $$(call obj,$$(wildcard tools/%/*.c)) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $(filter %.o,$^) $(call libgroup,$(ALL_LIBS)) $(PKG_LIBS) $(SRV_LIBS) -lpthread

$(BUILD)/tests/test_%: $(BUILD)/obj/tests/unit/test_%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(call libgroup,$(ALL_LIBS)) $(PKG_LIBS) $(TEST_LIBS) $(SRV_LIBS) \
	    $(shell sed -n 's,^/\* *LDWRAP: *\(.*\) \*/$$,\1,p' tests/unit/test_$*.c) -lpthread

# Tests: unit binaries, then integration scripts, with a summary. Any failure fails the target.
check: deps-check all
	@BUILD=$(abspath $(BUILD)) tests/run.sh

unit: all
	@BUILD=$(abspath $(BUILD)) tests/run.sh unit

integration: all
	@BUILD=$(abspath $(BUILD)) tests/run.sh integration

demo: deps
	$(MAKE) all
	@BUILD=$(abspath $(BUILD)) tools/demo.sh

deps:
	@tools/deps.sh install

deps-check:
	@tools/deps.sh check

bench: all
	@BUILD=$(abspath $(BUILD)) tools/bench/run.sh

install: $(BINS)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/ota
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 $(LIB_AGENT) $(LIB_KEYS) $(LIB_FORMATS) $(DESTDIR)$(PREFIX)/lib/
	install -m 0644 formats/ota/*.h keys/ota/*.h agent/ota/*.h $(DESTDIR)$(PREFIX)/include/ota/

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-san

# Targets kept beside their tools (tools/<name>.mk), e.g. `make torture` in tools/torture.mk.
-include tools/*.mk

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

include tools/fuzz/fuzz.mk
