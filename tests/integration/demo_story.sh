# The README's demo is a test too: `make demo`'s script runs end to end in a temp dir (it checks
# its own claim: every offline change on the server exactly once, none lost).
. "$OTA_TOP/tests/lib/assert.sh"
OTA_DEMO_DIR="$T/demo" sh "$OTA_TOP/tools/demo.sh"
