#!/bin/sh
# The device's life with ota-agent against a repository written by another TUF implementation
# (@tufjs/models, tests/interop/agent-repo.mjs) served by nginx: first start with nothing to run,
# v1 installed, a check that finds nothing new transfers only the timestamp, v2 staged then
# activated on trial then confirmed, a manual rollback (not offered again), a trial without
# confirm rolled back by the fourth start, an interrupted download resumed with a Range request,
# a part file that is not the signed bytes thrown away, a server down and a server that hangs
# at startup (the app keeps its release and startup returns within its bound), sideloads
# (accepted, older refused, foreign key refused), usage errors.
set -eu
: "${OTA_BIN:?}" "${OTA_TOP:?}"
. "$OTA_TOP/tests/lib/nginx.sh"
. "$OTA_TOP/tests/lib/npm.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ota-agent-flow.XXXXXX")
hang_pid=""
run_pid=""
slow_pid=""
cleanup() {
    [ -n "$slow_pid" ] && kill "$slow_pid" 2>/dev/null && wait "$slow_pid" 2>/dev/null
    nginx_stop || true
    [ -n "$run_pid" ] && kill "$run_pid" 2>/dev/null && wait "$run_pid" 2>/dev/null
    [ -n "$hang_pid" ] && kill "$hang_pid" 2>/dev/null && wait "$hang_pid" 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() {
    echo "FAIL: $*" >&2
    for f in "$tmp"/out "$tmp"/err; do
        [ -f "$f" ] && { echo "--- $f" >&2; cat "$f" >&2; }
    done
    exit 1
}

interop_npm_install
REPO="node $INTEROP_DIR/agent-repo.mjs"
app=com.example.field
seed=$($REPO --print-targets-seed)
state="$tmp/state"
pub="$tmp/pub"
mkdir -p "$tmp/b" "$tmp/src"

# Release metadata; RT_MIN, RT_MAX and MIN_AGENT override the defaults.
rel() { # version model reads
    printf '{"app":"%s","version":"%s","model":"%s","reads_models":[%s],' "$app" "$1" "$2" "$3"
    printf '"runtime":{"min":"%s","max":"%s"},"min_agent":"%s","mandatory":false}' \
        "${RT_MIN:-3.0}" "${RT_MAX:-3.9}" "${MIN_AGENT:-0.1}"
}

pack() { # version model reads [payload bytes] [seed]
    d="$tmp/src/$1"
    mkdir -p "$d/assets"
    echo "console.log('v$1')" >"$d/index.js"
    echo "{\"version\":\"$1\"}" >"$d/assets/app.json"
    if [ "${4:-0}" -gt 0 ]; then
        head -c "$4" /dev/urandom >"$d/assets/big.bin"
    fi
    "$OTA_BIN/ota-test-pack" --seed "${5:-$seed}" --src "$d" --out "$tmp/b/$app-$1.ota" \
        --release "$(rel "$1" "$2" "$3")" || fail "packing $1"
}

# CHANNELS and YANKED override the defaults.
publish() { # version model reads
    $REPO --out "$pub" --target "$app/$app-$1.ota=$tmp/b/$app-$1.ota" --custom \
        "{\"ota\":{\"release\":$(rel "$1" "$2" "$3"),
          \"channels\":${CHANNELS:-{\"stable\":100,\"beta\":10\}},
          \"breaking\":false,\"yanked\":${YANKED:-false},
          \"published\":\"2026-11-24T10:00:00Z\"}}" ||
        fail "publishing $1"
}

config() { # repository_url check_timeout_s; FACTORY adds factory_bundle
    fb=""
    [ -z "${FACTORY:-}" ] || fb="\"factory_bundle\": \"$FACTORY\","
    cat >"$tmp/agent.json" <<EOF
{"repository_url": "$1", "state_dir": "$state", "app": "$app", "channel": "stable",
 "runtime_version": "3.1", "trusted_root": "$pub/metadata/1.root.json",
 $fb
 "check_timeout_s": $2, "connect_timeout_s": 2, "low_speed_time_s": 5, "trial_launches": 3}
EOF
}

agent() {
    "$OTA_BIN/ota-agent" --config "$tmp/agent.json" "$@" >"$tmp/out" 2>"$tmp/err"
}

running() { # the version the app runs now
    cat "$state/current/assets/app.json" 2>/dev/null | sed 's/.*"version":"\([^"]*\)".*/\1/'
}

ms() { date +%s%3N; }

# ---- usage ---------------------------------------------------------------------------------
"$OTA_BIN/ota-agent" --help >"$tmp/out" || fail "--help"
grep -q 'startup' "$tmp/out" && grep -q 'rollback' "$tmp/out" || fail "usage lists no commands"
set +e
"$OTA_BIN/ota-agent" frobnicate >/dev/null 2>&1; [ $? -eq 2 ] || fail "unknown command: not 2"
"$OTA_BIN/ota-agent" status --frob >/dev/null 2>&1; [ $? -eq 2 ] || fail "unknown option: not 2"
"$OTA_BIN/ota-agent" install >/dev/null 2>&1; [ $? -eq 2 ] || fail "install without FILE"
"$OTA_BIN/ota-agent" activate --help >"$tmp/out" 2>&1; [ $? -eq 0 ] || fail "activate --help"
set -e
grep -q 'activate \[VERSION\]' "$tmp/out" || fail "activate --help says nothing useful"
echo '{"repository_url":"http://x","colour":1}' >"$tmp/bad.json"
set +e
"$OTA_BIN/ota-agent" --config "$tmp/bad.json" status 2>"$tmp/err"; rc=$?
set -e
[ $rc -eq 1 ] && grep -q "colour" "$tmp/err" || fail "unknown config key not named"

# ---- first start, nothing installed, repository not up yet --------------------------------
pack 1.0.0 m1 ""
publish 1.0.0 m1 ""
config "http://127.0.0.1:9" 5
set +e
agent startup; rc=$?
set -e
[ $rc -eq 1 ] || fail "startup with nothing installed must exit 1 (got $rc)"
grep -q "no release installed: nothing to run" "$tmp/err" || fail "no clear message"
[ ! -e "$state/current" ] || fail "current exists without a release"

# ---- v1 installed ----------------------------------------------------------------------
nginx_start "$pub" || fail "nginx"
config "$NGINX_URL" 5
agent startup || fail "first startup"
[ "$(cat "$tmp/out")" = "$state/current" ] || fail "startup printed '$(cat "$tmp/out")'"
[ "$(running)" = 1.0.0 ] || fail "running '$(running)', want 1.0.0"
agent status --json || fail "status"
grep -q '"version": "1.0.0"' "$tmp/out" || fail "status does not show 1.0.0"

# A check that finds nothing new fetches the timestamp (and probes for a new root), no more.
: >"$NGINX_RUN/access.log"
agent check --json || fail "check"
grep -q '"found": false' "$tmp/out" || fail "check found something"
grep -v -e 'timestamp.json' -e '[0-9]\.root.json' "$NGINX_RUN/access.log" >"$tmp/extra" || true
[ ! -s "$tmp/extra" ] || fail "a check without news fetched: $(cat "$tmp/extra")"

# ---- v2: staged by one start, activated by the next, confirmed -----------------------------
pack 1.1.0 m1 ""
publish 1.1.0 m1 ""
agent startup || fail "startup (stage 1.1.0)"
grep -q "1.1.0 is staged" "$tmp/err" || fail "1.1.0 not staged"
[ "$(running)" = 1.0.0 ] || fail "a check must not switch the running release"
[ -d "$state/bundles/1.1.0" ] || fail "no bundles/1.1.0"
agent startup || fail "startup (activate 1.1.0)"
[ "$(running)" = 1.1.0 ] || fail "1.1.0 not activated"
agent status || fail "status"
grep -q "launch 1 of 3" "$tmp/out" || fail "1.1.0 not on trial: $(cat "$tmp/out")"
agent confirm || fail "confirm"
agent status
grep -q "active    1.1.0 (confirmed)" "$tmp/out" || fail "not confirmed"

# ---- manual rollback: back to 1.0.0, and 1.1.0 is not offered again ------------------------
agent rollback || fail "rollback"
grep -q "rolled back to 1.0.0" "$tmp/out" || fail "rollback output"
[ "$(running)" = 1.0.0 ] || fail "rollback did not switch"
agent check || fail "check after rollback"
grep -q "up to date" "$tmp/out" || fail "1.1.0 offered again after a rollback"
agent explain || fail "explain"
grep -q "offered .*rolled back" "$tmp/out" || fail "explain: $(cat "$tmp/out")"
agent explain --json || fail "explain --json"
node -e 'const x = JSON.parse(require("fs").readFileSync(process.argv[1]));
  const r = Object.fromEntries(x.rules.map((r) => [r.rule, r.ok]));
  if (x.version !== "1.1.0" || r.offered || !r.runtime || !r.min_agent || !r.rollout ||
      !r.staged || r.active) process.exit(1);' "$tmp/out" || fail "explain --json rules"

# ---- trial without confirm: the fourth start rolls back -----------------------------------
pack 1.2.0 m1 ""
publish 1.2.0 m1 ""
agent startup || fail "startup (stage 1.2.0)"
for n in 1 2 3; do
    agent startup || fail "startup $n of 1.2.0"
    [ "$(running)" = 1.2.0 ] || fail "1.2.0 not running at launch $n"
done
agent startup || fail "startup after the trial"
grep -q "rolled back" "$tmp/err" || fail "no automatic rollback: $(cat "$tmp/err")"
[ "$(running)" = 1.0.0 ] || fail "automatic rollback went to '$(running)'"
agent history
grep -q "failed .*1.2.0 .*not confirmed after 3 launches" "$tmp/out" ||
    fail "history: $(cat "$tmp/out")"
agent startup || fail "startup after rollback"
[ "$(running)" = 1.0.0 ] || fail "the failed release came back"

# ---- interrupted download resumes with a Range request ------------------------------------
pack 1.3.0 m1 "" 3000000
publish 1.3.0 m1 ""
bundle="$tmp/b/$app-1.3.0.ota"
size=$(wc -c <"$bundle")
sha=$(sha256sum "$bundle" | cut -c1-64)
head -c 1000000 "$bundle" >"$state/downloads/$sha.part"
: >"$NGINX_RUN/access.log"
agent check || fail "check resuming: $(cat "$tmp/err")"
grep -q "1.3.0 is staged" "$tmp/out" || fail "1.3.0 not staged"
grep "$sha" "$NGINX_RUN/access.log" >"$tmp/req" || fail "bundle not requested"
grep -q '" 206 ' "$tmp/req" || fail "no range request: $(cat "$tmp/req")"
sent=$(awk '{ for (i = 1; i < NF; i++) if ($i == 206) print $(i + 1) }' "$tmp/req")
[ "$sent" -eq $((size - 1000000)) ] || fail "resumed transfer sent $sent, want $((size - 1000000))"
[ ! -e "$state/downloads/$sha.part" ] || fail "part file left behind"

# A check killed in the middle of a transfer (a slow server) resumes where it stopped.
pack 1.3.1 m1 "" 2000000
publish 1.3.1 m1 ""
bundle="$tmp/b/$app-1.3.1.ota"
size=$(wc -c <"$bundle")
sha=$(sha256sum "$bundle" | cut -c1-64)
node "$OTA_TOP/tests/lib/slow-http.mjs" "$pub" 1000000 >"$tmp/slow.port" 2>"$tmp/slow.log" &
slow_pid=$!
n=0
while [ ! -s "$tmp/slow.port" ]; do
    n=$((n + 1)); [ $n -lt 200 ] || fail "slow server did not start"; sleep 0.05
done
config "http://127.0.0.1:$(cat "$tmp/slow.port")" 5
"$OTA_BIN/ota-agent" --config "$tmp/agent.json" check >/dev/null 2>&1 &
chk=$!
n=0
partsize() { if [ -f "$1" ]; then wc -c <"$1"; else echo 0; fi; }
while [ "$(partsize "$state/downloads/$sha.part")" -lt 300000 ]; do
    n=$((n + 1)); [ $n -lt 200 ] || fail "download did not start"; sleep 0.05
done
kill -KILL "$chk"
wait "$chk" 2>/dev/null || true
have=$(wc -c <"$state/downloads/$sha.part")
[ "$have" -gt 0 ] && [ "$have" -lt "$size" ] || fail "part file has $have of $size bytes"
[ ! -d "$state/bundles/1.3.1" ] || fail "staged from a killed download"
agent check || fail "check after a killed download: $(cat "$tmp/err")"
grep -q "1.3.1 is staged" "$tmp/out" || fail "1.3.1 not staged after resuming"
grep -q "$sha.*bytes=$have- 206 $((size - have))" "$tmp/slow.log" ||
    fail "did not resume from byte $have: $(cat "$tmp/slow.log")"
kill "$slow_pid"; wait "$slow_pid" 2>/dev/null || true; slow_pid=""
config "$NGINX_URL" 5
agent status || fail "status"
[ "$(running)" = 1.0.0 ] || fail "a check switched the running release"

# A part file whose bytes are not the signed ones is discarded, and the next check succeeds.
pack 1.4.0 m1 "" 200000
publish 1.4.0 m1 ""
sha=$(sha256sum "$tmp/b/$app-1.4.0.ota" | cut -c1-64)
head -c 5000 /dev/urandom >"$state/downloads/$sha.part"
set +e
agent check; rc=$?
set -e
[ $rc -eq 1 ] || fail "a corrupt part file was accepted"
grep -q "OTA_E_DIGEST" "$tmp/err" || fail "corrupt part: $(cat "$tmp/err")"
[ ! -d "$state/bundles/1.4.0" ] || fail "a corrupt bundle was staged"
agent check || fail "check after a corrupt part: $(cat "$tmp/err")"
[ -d "$state/bundles/1.4.0" ] || fail "1.4.0 not staged"
agent startup || fail "startup (activate 1.4.0)"
[ "$(running)" = 1.4.0 ] || fail "1.4.0 not running"
agent confirm || fail "confirm 1.4.0"

# ---- releases this device must not take -------------------------------------------------
pack 1.4.2 m1 ""
YANKED=true publish 1.4.2 m1 ""
pack 1.4.3 m1 ""
CHANNELS='{"beta":100}' publish 1.4.3 m1 ""
RT_MIN=4.0 RT_MAX=4.9 pack 1.4.4 m1 ""
RT_MIN=4.0 RT_MAX=4.9 publish 1.4.4 m1 ""
pack 1.4.5 m1 ""
CHANNELS='{"stable":0}' publish 1.4.5 m1 ""
MIN_AGENT=9.0 pack 1.4.6 m1 ""
MIN_AGENT=9.0 publish 1.4.6 m1 ""
agent check || fail "check with unsuitable releases"
grep -q "up to date" "$tmp/out" || fail "an unsuitable release was taken: $(cat "$tmp/out")"
agent explain --json || fail "explain --json"
node -e 'const x = JSON.parse(require("fs").readFileSync(process.argv[1]));
  const r = Object.fromEntries(x.rules.map((r) => [r.rule, r.ok]));
  if (x.version !== "1.4.6" || !r.offered || !r.runtime || r.min_agent || r.staged ||
      r.active) process.exit(1);' "$tmp/out" || fail "explain of 1.4.6: $(cat "$tmp/out")"
for v in 1.4.2 1.4.3 1.4.4 1.4.5 1.4.6; do
    [ ! -d "$state/bundles/$v" ] || fail "$v was staged"
done
# A bundle whose manifest differs from the release the signed metadata describes.
pack 1.4.7 m1 ""
$REPO --out "$pub" --target "$app/$app-1.4.7.ota=$tmp/b/$app-1.4.7.ota" --custom \
    "{\"ota\":{\"release\":$(rel 1.4.7 m9 ""),\"channels\":{\"stable\":100},
      \"breaking\":false,\"yanked\":false,\"published\":\"2026-11-24T10:00:00Z\"}}" ||
    fail "publishing 1.4.7"
set +e
agent check; rc=$?
set -e
[ $rc -eq 1 ] && grep -q "differs from the signed target" "$tmp/err" ||
    fail "a bundle unlike its target was accepted: $(cat "$tmp/err")"
[ ! -d "$state/bundles/1.4.7" ] || fail "1.4.7 staged"
$REPO --out "$pub" --remove "$app/$app-1.4.7.ota" || fail "unpublishing 1.4.7"
# Staged, then yanked before it became active: withdrawn by the next check.
pack 1.4.8 m1 ""
publish 1.4.8 m1 ""
agent check || fail "check (stage 1.4.8)"
[ -d "$state/bundles/1.4.8" ] || fail "1.4.8 not staged"
YANKED=true publish 1.4.8 m1 ""
agent check || fail "check (1.4.8 yanked)"
[ ! -d "$state/bundles/1.4.8" ] || fail "a yanked staged release was kept"
agent history
grep -q "withdrawn .*1.4.8 .*yanked" "$tmp/out" || fail "withdrawal not in history"
agent startup || fail "startup after a withdrawal"
[ "$(running)" = 1.4.0 ] || fail "running $(running) after a withdrawal"

# ---- run: checks at once, then sleeps; SIGTERM ends it cleanly and promptly --------------
pack 1.4.1 m1 ""
publish 1.4.1 m1 ""
"$OTA_BIN/ota-agent" --config "$tmp/agent.json" run >"$tmp/run.out" 2>"$tmp/run.err" &
run_pid=$!
n=0
while [ ! -d "$state/bundles/1.4.1" ]; do
    n=$((n + 1)); [ $n -lt 200 ] || fail "run did not stage 1.4.1: $(cat "$tmp/run.err")"
    sleep 0.05
done
sleep 0.3
agent status || fail "status while run sleeps (run must not hold the lock)"
t0=$(ms)
kill -TERM "$run_pid"
set +e
wait "$run_pid"; rc=$?
set -e
t1=$(ms)
run_pid=""
[ $rc -eq 0 ] || fail "run exited $rc on SIGTERM"
[ $((t1 - t0)) -lt 2000 ] || fail "run took $((t1 - t0)) ms to stop"
[ "$(running)" = 1.4.0 ] || fail "run switched the running release"
agent activate 1.4.1 || fail "activate 1.4.1 (run must have released the lock)"
agent confirm || fail "confirm 1.4.1"
[ "$(running)" = 1.4.1 ] || fail "1.4.1 not running"

# ---- server down, then a server that never answers: startup stays within its bound ---------
nginx_stop
t0=$(ms)
agent startup || fail "startup with the server down must still run the app"
t1=$(ms)
[ "$(cat "$tmp/out")" = "$state/current" ] || fail "startup printed no path with the server down"
grep -q "check failed" "$tmp/err" || fail "the failed check is not reported"
[ $((t1 - t0)) -lt 7000 ] || fail "startup took $((t1 - t0)) ms with the server down"

node -e 'const s = require("net").createServer(() => {});
  s.listen(0, "127.0.0.1", () => console.log(s.address().port));' >"$tmp/hang.port" &
hang_pid=$!
n=0
while [ ! -s "$tmp/hang.port" ]; do
    n=$((n + 1)); [ $n -lt 200 ] || fail "hanging server did not start"; sleep 0.05
done
config "http://127.0.0.1:$(cat "$tmp/hang.port")" 2
t0=$(ms)
agent startup || fail "startup with a hanging server"
t1=$(ms)
[ "$(running)" = 1.4.1 ] || fail "release changed with a hanging server"
grep -q "did not finish within 2 s" "$tmp/err" || fail "bound not reported: $(cat "$tmp/err")"
[ $((t1 - t0)) -lt 4500 ] || fail "startup took $((t1 - t0)) ms, bound 2 s"
kill "$hang_pid"; wait "$hang_pid" 2>/dev/null || true; hang_pid=""
agent status || fail "status"
grep -q "checked .*OTA_E_TIMEOUT" "$tmp/out" || fail "status: $(cat "$tmp/out")"

# ---- sideload ----------------------------------------------------------------------------
pack 1.5.0 m1 ""
agent install "$tmp/b/$app-1.5.0.ota" || fail "install: $(cat "$tmp/err")"
[ "$(running)" = 1.5.0 ] || fail "sideload not running"
set +e
agent install "$tmp/b/$app-1.0.0.ota"; rc=$?
set -e
[ $rc -eq 1 ] && grep -q "OTA_E_ROLLBACK" "$tmp/err" || fail "older sideload: $(cat "$tmp/err")"
pack 1.6.0 m1 "" 0 "$(printf '%064d' 7)"
set +e
agent install "$tmp/b/$app-1.6.0.ota"; rc=$?
set -e
[ $rc -eq 1 ] || fail "a bundle signed by an unknown key was installed"
grep -q -e OTA_E_THRESHOLD -e OTA_E_SIG -e OTA_E_KEY_UNKNOWN "$tmp/err" ||
    fail "foreign key: $(cat "$tmp/err")"
[ ! -d "$state/bundles/1.6.0" ] && [ "$(running)" = 1.5.0 ] || fail "foreign bundle changed state"
[ -z "$(ls "$state/staging")" ] || fail "staging leftovers"

# ---- gc keeps the active and previous releases --------------------------------------------
agent gc || fail "gc"
[ -d "$state/bundles/1.5.0" ] && [ -d "$state/bundles/1.4.1" ] || fail "gc removed too much"
[ ! -d "$state/bundles/1.0.0" ] || fail "gc kept 1.0.0"
# ---- factory bundle: a first start without the network runs what the device shipped with --
state="$tmp/state2"
FACTORY="$tmp/b/$app-1.1.0.ota" config "http://127.0.0.1:9" 2
agent startup || fail "first start with a factory bundle: $(cat "$tmp/err")"
[ "$(running)" = 1.1.0 ] || fail "factory bundle not running"
agent history
grep -q "staged .*1.1.0 .*factory" "$tmp/out" || fail "factory install not in history"
echo "agent_flow: ok"
