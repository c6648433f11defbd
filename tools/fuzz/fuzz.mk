# libFuzzer harnesses: tools/fuzz/fuzz_<name>.c, one per parser of outside input. Included by
# the top Makefile; the normal build ignores tools/fuzz.
#   make fuzz [FUZZ_SECONDS=60]   build every harness into build-fuzz/, run each over its corpus
#   make fuzz-short               10 s per harness plus every regression input once (CI)
#   make fuzz-seeds               regenerate the seed corpora in tests/fuzz/ from the real code
# The library sources are compiled again with clang and the fuzzing sanitizers into
# build-fuzz/obj; build/ is never reused. tools/fuzz/run.sh runs the harnesses and summarises.

FUZZ_CC      ?= clang
FUZZ_BUILD   := build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS   = -std=c11 -D_GNU_SOURCE -g -O1 $(WARN) $(FUZZ_SAN) -MMD -MP \
                -Iformats -Ikeys -Iagent -Ipublisher -Itools $(PKG_CFLAGS)

FUZZ_HARNESSES := $(patsubst tools/fuzz/fuzz_%.c,%,$(wildcard tools/fuzz/fuzz_*.c))
FUZZ_BINS      := $(addprefix $(FUZZ_BUILD)/fuzz_,$(FUZZ_HARNESSES))
# Sources outside the libraries that a harness needs (parsers that live in a tool).
FUZZ_EXTRA_sync_request := $(FUZZ_BUILD)/obj/tools/ota-syncd/protocol.o

fuzz_obj = $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(1))
FUZZ_LIBS := $(FUZZ_BUILD)/lib/libota_agent.a $(FUZZ_BUILD)/lib/libota_publisher.a \
             $(FUZZ_BUILD)/lib/libota_keys.a $(FUZZ_BUILD)/lib/libota_formats.a
FUZZ_LINK  = -Wl,--start-group $(FUZZ_LIBS) -Wl,--end-group $(PKG_LIBS) -lpthread

.PHONY: fuzz fuzz-short fuzz-build fuzz-seeds fuzz-clean

fuzz: fuzz-build
	@tools/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

fuzz-short: fuzz-build
	@tools/fuzz/run.sh -r $(FUZZ_BUILD) 10

fuzz-build: $(FUZZ_BINS)

fuzz-seeds: all
	tools/fuzz/mkseeds.sh $(BUILD)

fuzz-clean:
	rm -rf $(FUZZ_BUILD)

clean: fuzz-clean

# Library objects carry the coverage instrumentation (fuzzer-no-link), the harness the
# libFuzzer driver (fuzzer).
$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo '  FUZZCC $<'
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/lib/libota_formats.a: $(call fuzz_obj,$(FORMATS_SRC))
$(FUZZ_BUILD)/lib/libota_keys.a: $(call fuzz_obj,$(KEYS_SRC))
$(FUZZ_BUILD)/lib/libota_publisher.a: $(call fuzz_obj,$(PUBLISHER_SRC))
$(FUZZ_BUILD)/lib/libota_agent.a: $(call fuzz_obj,$(AGENT_SRC))
$(FUZZ_BUILD)/lib/%.a:
	@mkdir -p $(dir $@)
	@rm -f $@
	@$(AR) rcs $@ $^

# The top Makefile has turned on .SECONDEXPANSION, hence $$ for the per-harness extras.
$(FUZZ_BINS): $(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/obj/tools/fuzz/fuzz_%.o \
              $$(FUZZ_EXTRA_$$*) $(FUZZ_LIBS)
	@echo '  FUZZLD $@'
	@$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $(filter %.o,$^) $(FUZZ_LINK)

-include $(shell find $(FUZZ_BUILD)/obj -name '*.d' 2>/dev/null)
