# Long forms of the crash torture and of the I/O fault injection; their short forms run in
# `make check` (tests/integration/torture_short.sh, tests/integration/fault_inject.sh).
#   make torture [TORTURE_KILLS=2000] [SEED=N]   SEED: a new one each run unless given
TORTURE_KILLS ?= 2000

torture: all
	@seed=$(or $(SEED),$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')); \
	echo "torture: SEED=$$seed TORTURE_KILLS=$(TORTURE_KILLS)"; \
	BUILD=$(abspath $(BUILD)) OTA_BIN=$(abspath $(BUILD))/bin OTA_TOP=$(CURDIR) \
	    TORTURE_KILLS=$(TORTURE_KILLS) SEED=$$seed sh tests/torture/torture.sh && \
	BUILD=$(abspath $(BUILD)) OTA_BIN=$(abspath $(BUILD))/bin OTA_TOP=$(CURDIR) \
	    FAULT_FULL=1 sh tests/integration/fault_inject.sh
