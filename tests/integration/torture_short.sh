#!/bin/sh
# The crash torture (tests/torture/torture.sh) in its short, seeded form: 60 kills at random
# moments of check, staging, activate, confirm, rollback, sync, gc, install and startup, each
# followed by two startups and the check of every invariant. `make torture` runs the long form.
set -eu
: "${OTA_BIN:?}" "${OTA_TOP:?}"
TORTURE_KILLS=${TORTURE_SHORT_KILLS:-60} SEED=${SEED:-1} TORTURE_MAX_S=${TORTURE_MAX_S:-300} \
    exec sh "$OTA_TOP/tests/torture/torture.sh"
