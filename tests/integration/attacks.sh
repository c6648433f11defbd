#!/bin/sh
# The attacks the TUF specification names ("Goals: attacks"), played against a device by a
# malicious repository or mirror (tools/ota-evil-server) and by an attacker holding some keys
# (tools/ota-evil-meta re-signs metadata, ota-publish pack --key makes bundles under a key
# that is not the targets key). The repository is made by ota-publish. Each case asserts that
# ota-agent refuses (exit 1 naming the error, or the release simply not taken), says why,
# and leaves `current`, the installed releases and the trusted metadata as they were (or, where
# genuine newer metadata verified before the attack was found, holding only files the
# repository really published).
#
# Devices: D lives through most attacks; D2 sideloads a release, then meets a stale mirror;
# B meets an attacker who holds the online (timestamp and snapshot) keys; C follows a root
# rotated 1 -> 2 -> 3 -> 4 on a second repository.
. "$OTA_TOP/tests/lib/assert.sh"
export OTA_PASSPHRASE="attacks passphrase"

EVIL_SERVER="$OTA_BIN/ota-evil-server"
EVIL_META="$OTA_BIN/ota-evil-meta"
app=com.example.field
R="$T/repo"
M="$R/public/metadata"
mkdir -p "$T/b" "$T/src" "$T/old" "$T/genuine" "$T/forged"

# ---- helpers -------------------------------------------------------------------------------

ms() { date +%s%3N; }

case_() { # NAME DESCRIPTION
    printf '== %s: %s\n' "$1" "$2"
}

# Release metadata is given on the ota-publish command line; RT overrides the runtime range.
mkapp() { # DIR VERSION [RANDOM_BYTES]
    mkdir -p "$1/assets"
    printf "console.log('%s');\n" "$2" >"$1/index.js"
    printf '{"version":"%s"}\n' "$2" >"$1/assets/app.json"
    if [ "${3:-0}" -gt 0 ]; then head -c "$3" /dev/urandom >"$1/assets/big.bin"; fi
}

pack() { # REPO|- APP VERSION [RANDOM_BYTES] [pack options...]: "-" signs with pack's --key
    _repo=$1 _app=$2 _v=$3 _n=${4:-0}
    shift 3
    [ $# -gt 0 ] && shift
    [ "$_repo" = - ] || set -- --repo "$_repo" "$@"
    mkapp "$T/src/$_app-$_v" "$_v" "$_n"
    "$PUB" pack "$T/src/$_app-$_v" -o "$T/b/$_app-$_v.ota" --app "$_app" --version "$_v" \
        --model m1 --runtime "${RT:-3.0..3.9}" --force "$@" >/dev/null 2>"$T/pack.err" ||
        die "packing $_app $_v: $(cat "$T/pack.err")"
}

# Every metadata file a repository publishes is archived by digest, so a device's trusted
# metadata can be checked to hold nothing else.
archive() { # REPO
    for f in "$1"/public/metadata/*.json; do
        cp "$f" "$T/genuine/$(sha256sum <"$f" | cut -c1-64)"
    done
}

release() { # REPO FILE [options...]
    _repo=$1
    shift
    "$PUB" release "$_repo" "$@" >/dev/null || die "releasing $*"
    archive "$_repo"
}

# ota-evil-server NAME serving DIR; its port in $port_NAME, rules in $T/NAME.rules.
server_start() { # NAME DIR
    "$EVIL_SERVER" --root "$2" --rules "$T/$1.rules" --port-file "$T/$1.port" \
        --pid-file "$T/$1.pid" --log "$T/$1.log" 2>>"$T/$1.stderr" &
    echo $! >"$T/$1.child"
    _n=0
    while [ ! -s "$T/$1.port" ]; do
        _n=$((_n + 1))
        [ $_n -lt 200 ] || die "ota-evil-server $1 did not start: $(cat "$T/$1.stderr")"
        sleep 0.05
    done
    eval "port_$1=\$(cat \"\$T/\$1.port\")"
}
server_stop() { # NAME: stops it by its process id; its exit status goes to $T/NAME.status
    [ -s "$T/$1.child" ] || return 0
    _pid=$(cat "$T/$1.child")
    rm -f "$T/$1.child"
    kill -TERM "$_pid" 2>/dev/null || true
    _st=0
    wait "$_pid" || _st=$?
    echo "$_st" >"$T/$1.status"
}
stop_servers() { for s in repo mirror r2; do server_stop "$s"; done; }
add_cleanup stop_servers

rules() { # NAME JSON: replaced atomically, the server re-reads it at the next request
    printf '{"rules": %s}\n' "$2" >"$T/$1.rules.tmp"
    mv "$T/$1.rules.tmp" "$T/$1.rules"
}
no_rules() { rm -f "$T/$1.rules"; }

config() { # DEVICE URL [CHECK_TIMEOUT_S]
    cat >"$T/$1.json" <<EOF
{"repository_url": "$2", "state_dir": "$T/$1", "app": "$app", "channel": "stable",
 "runtime_version": "3.1", "trusted_root": "$TRUST",
 "check_timeout_s": ${3:-10}, "connect_timeout_s": 2, "low_speed_time_s": 3}
EOF
}

# agent DEVICE ARGS...: stdout in $T/out, stderr in $T/err; FAKE=+2d runs it under faketime.
agent() {
    _dev=$1
    shift
    if [ -n "${FAKE:-}" ]; then
        # libfaketime is preloaded ahead of a sanitizer runtime: tell ASan that is fine.
        ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
            faketime -f "$FAKE" "$AGENT" --config "$T/$_dev.json" "$@" >"$T/out" 2>"$T/err"
    else
        "$AGENT" --config "$T/$_dev.json" "$@" >"$T/out" 2>"$T/err"
    fi
}
msg() { grep '^ota-agent' "$T/err" | tail -n 1; }

# refuse DEVICE CODE PATTERN ARGS...: the agent must exit 1, naming CODE and PATTERN.
refuse() {
    _dev=$1 _code=$2 _pat=$3
    shift 3
    set +e
    agent "$_dev" "$@"
    _rc=$?
    set -e
    [ $_rc -eq 1 ] || die "$_dev $*: exit $_rc, expected a refusal; $(cat "$T/out" "$T/err")"
    grep -q -- "$_code" "$T/err" || die "$_dev $*: not $_code: $(msg)"
    grep -q -- "$_pat" "$T/err" || die "$_dev $*: does not say '$_pat': $(msg)"
    printf '   refused: %s\n' "$(msg)"
}

running() { # the version DEVICE's app runs
    sed 's/.*"version":"\([^"]*\)".*/\1/' "$T/$1/current/assets/app.json"
}

# What must not change: current, the installed releases, and (unless told) the metadata.
keep() { # DEVICE
    { readlink "$T/$1/current"; ls "$T/$1/bundles"; } >"$T/$1.kept"
    tree_sum "$T/$1/metadata" >"$T/$1.meta"
}
# Every file of DEVICE's trusted metadata is one the repository published.
genuine_meta() { # DEVICE
    for f in "$T/$1"/metadata/*; do
        [ -f "$T/genuine/$(sha256sum <"$f" | cut -c1-64)" ] ||
            die "$1: metadata/$(basename "$f") is not a file the repository published"
    done
}
kept() { # DEVICE [genuine]: as keep recorded it; with genuine, metadata may have moved to
    # genuine newer files only
    { readlink "$T/$1/current"; ls "$T/$1/bundles"; } | cmp -s - "$T/$1.kept" ||
        die "$1: current or the installed releases changed: $(readlink "$T/$1/current")"
    [ -z "$(ls -A "$T/$1/staging" 2>/dev/null)" ] || die "$1: staging holds $(ls "$T/$1/staging")"
    if [ "${2:-}" != genuine ]; then
        [ "$(tree_sum "$T/$1/metadata")" = "$(cat "$T/$1.meta")" ] ||
            die "$1: trusted metadata changed"
    fi
    genuine_meta "$1"
}

# A device asked a path of the server since mark N (the log's line count then).
mark() { wc -l <"$T/$1.log" | tr -d ' '; }
fetched_since() { tail -n +"$(($2 + 1))" "$T/$1.log" | grep -q -- "$3"; }

latest() { # ROLE: the newest version of ROLE the repository published
    ls "$M" | sed -n "s/^\\([0-9]*\\)\\.$1\\.json\$/\\1/p" | sort -n | tail -n 1
}

tsver() { # version of DEVICE's trusted timestamp
    sed 's/.*"_type":"timestamp".*"version":\([0-9]*\)}}$/\1/' "$T/$1/metadata/timestamp.json"
}

bundle_url() { # VERSION: the path a device fetches the bundle of VERSION from
    sha=$(sha256sum <"$T/b/$app-$1.ota" | cut -c1-64)
    printf '/targets/%s/%s.%s-%s.ota' "$app" "$sha" "$app" "$1"
}

# ---- setup ---------------------------------------------------------------------------------
step "setup: repository (3 root keys, 2 needed; timestamp valid 1 day), device D installs 1.0.0"
"$PUB" init "$R" --root-keys 3 --root-threshold 2 --expires timestamp=1 >/dev/null
archive "$R"
TRUST="$M/1.root.json"
pack "$R" $app 1.0.0
release "$R" "$T/b/$app-1.0.0.ota" --channel stable
cp -a "$R/public" "$T/mirror-1.0.0" # what a mirror that stopped syncing keeps serving
cp "$M/timestamp.json" "$T/old/timestamp-2.json"
server_start repo "$R/public"
URL="http://127.0.0.1:$port_repo"
config D "$URL"
agent D startup || die "first startup: $(cat "$T/err")"
[ "$(running D)" = 1.0.0 ] || die "D runs '$(running D)'"
"$PUB" keygen "$T/stranger.key" >/dev/null

# ---- indefinite freeze ---------------------------------------------------------------------
case_ freeze_expired "the served timestamp has expired (faketime +2d)"
keep D
FAKE=+2d refuse D OTA_E_EXPIRED "timestamp metadata version 2 expired" check
kept D
FAKE=+2d agent D startup || die "startup with expired metadata must still run the app"
[ "$(cat "$T/out")" = "$T/D/current" ] || die "startup printed '$(cat "$T/out")'"
grep -q "check failed: .*expired" "$T/err" || die "startup does not say why: $(cat "$T/err")"
kept D

case_ freeze_root_expired "the trusted root has expired and no newer one is published (+400d)"
FAKE=+400d refuse D OTA_E_EXPIRED "root metadata version 1 expired" check
kept D

case_ freeze_frozen_timestamp "a mirror keeps serving the old timestamp after 1.1.0 is out"
pack "$R" $app 1.1.0
release "$R" "$T/b/$app-1.1.0.ota" --channel stable
rules repo "[{\"path\": \"/metadata/timestamp.json\", \"substitute\": \"$T/old/timestamp-2.json\"}]"
keep D
agent D check || die "check: $(cat "$T/err")"
grep -q "up to date" "$T/out" || die "a frozen timestamp showed something new"
kept D
# Inside its validity the old timestamp is all the device can know; once it has expired:
FAKE=+2d refuse D OTA_E_EXPIRED "timestamp metadata version 2 expired" check
kept D
no_rules repo

# ---- rollback of metadata, malicious mirror ------------------------------------------------
agent D check || die "check (1.1.0): $(cat "$T/err")"
agent D activate && agent D confirm || die "activating 1.1.0: $(cat "$T/err")"
[ "$(running D)" = 1.1.0 ] || die "D runs '$(running D)'"

case_ rollback_timestamp "an older, validly signed timestamp (version 2 after 3)"
rules repo "[{\"path\": \"/metadata/timestamp.json\", \"substitute\": \"$T/old/timestamp-2.json\"}]"
keep D
refuse D OTA_E_ROLLBACK "timestamp version 2 is below the trusted 3" check
kept D
no_rules repo

case_ malicious_mirror "a mirror serves the whole repository as it was at 1.0.0"
server_start mirror "$T/mirror-1.0.0"
MIRROR="http://127.0.0.1:$port_mirror"
config D "$MIRROR"
keep D
refuse D OTA_E_ROLLBACK "timestamp version 2 is below the trusted 3" check
kept D
agent D startup || die "startup against a stale mirror must still run the app"
grep -q "check failed: .*below the trusted" "$T/err" || die "startup: $(cat "$T/err")"
[ "$(running D)" = 1.1.0 ] || die "D runs '$(running D)'"
kept D
config D "$URL"

case_ rollback_release "a device on 1.1.0 (sideloaded) meets a repository whose newest is 1.0.0"
config D2 "$MIRROR"
agent D2 install "$T/b/$app-1.1.0.ota" || die "sideload: $(cat "$T/err")"
keep D2
m=$(mark mirror)
agent D2 check || die "check: $(cat "$T/err")"
grep -q "up to date" "$T/out" || die "an older release was offered: $(cat "$T/out")"
! fetched_since mirror "$m" /targets/ || die "D2 downloaded a bundle older than its release"
[ "$(running D2)" = 1.1.0 ] || die "D2 runs '$(running D2)'"
kept D2 genuine # D2 trusts the mirror's genuine, unexpired metadata now
server_stop mirror

# ---- mix-and-match -------------------------------------------------------------------------
o=$(latest snapshot)
n=$((o + 1))
case_ mix_and_match_snapshot "the snapshot of version $o served as $n.snapshot.json"
cp "$M/$o.snapshot.json" "$M/$o.targets.json" "$T/old/"
pack "$R" $app 1.2.0
release "$R" "$T/b/$app-1.2.0.ota" --channel stable
[ "$(latest snapshot)" = $n ] && [ "$(latest targets)" = $n ] || die "expected version $n"
rules repo "[{\"path\": \"/metadata/$n.snapshot.json\",
              \"substitute\": \"$T/old/$o.snapshot.json\"}]"
keep D
refuse D "OTA_E_DIGEST\|OTA_E_LENGTH" "'snapshot.json' .*timestamp\|snapshot.json' is" check
kept D genuine

case_ mix_and_match_targets "the targets of version $o served as $n.targets.json"
rules repo "[{\"path\": \"/metadata/$n.targets.json\",
              \"substitute\": \"$T/old/$o.targets.json\"}]"
keep D
refuse D "OTA_E_DIGEST\|OTA_E_LENGTH" "'targets.json'" check
kept D genuine

# ---- arbitrary installation ----------------------------------------------------------------
case_ arbitrary_bundle "1.2.0's bundle replaced by a valid bundle signed by another key"
cp "$T/b/$app-1.2.0.ota" "$T/b/genuine-1.2.0.ota"
pack - $app 1.2.0 200 --key "$T/stranger.key"
mv "$T/b/$app-1.2.0.ota" "$T/b/evil-1.2.0.ota"
mv "$T/b/genuine-1.2.0.ota" "$T/b/$app-1.2.0.ota"
rules repo "[{\"path\": \"$(bundle_url 1.2.0)\", \"substitute\": \"$T/b/evil-1.2.0.ota\"}]"
keep D
refuse D "OTA_E_DIGEST\|OTA_E_LENGTH" "signed sha256\|signed length\|larger than [0-9]* bytes" check
kept D genuine
[ ! -d "$T/D/bundles/1.2.0" ] || die "the replaced bundle was staged"

case_ extraneous_bundle "1.2.0's bundle replaced by another app's bundle signed by the targets key"
pack "$R" com.example.other 1.2.0 300
rules repo "[{\"path\": \"$(bundle_url 1.2.0)\",
              \"substitute\": \"$T/b/com.example.other-1.2.0.ota\"}]"
keep D
refuse D "OTA_E_DIGEST\|OTA_E_LENGTH" "signed sha256\|signed length\|larger than [0-9]* bytes" check
kept D genuine

case_ arbitrary_bundle_tampered "1.2.0's bundle with one byte changed (same length)"
cp "$T/b/$app-1.2.0.ota" "$T/b/tampered-1.2.0.ota"
printf 'x' | dd of="$T/b/tampered-1.2.0.ota" bs=1 seek=300 conv=notrunc 2>/dev/null
rules repo "[{\"path\": \"$(bundle_url 1.2.0)\", \"substitute\": \"$T/b/tampered-1.2.0.ota\"}]"
keep D
refuse D OTA_E_DIGEST "signed sha256\|checksum does not match" check
kept D genuine
[ -z "$(ls "$T/D/downloads")" ] || die "the tampered download was kept: $(ls "$T/D/downloads")"
no_rules repo
# The device is not stuck with what the attacker sent: the genuine bundle stages.
agent D check || die "1.2.0 after the attack: $(cat "$T/err")"
[ -d "$T/D/bundles/1.2.0" ] || die "1.2.0 not staged after the attack"
cmp -s "$T/D/bundles/1.2.0/index.js" "$T/src/$app-1.2.0/index.js" ||
    die "the staged 1.2.0 is not the genuine one"

n=$(($(latest targets) + 1))
case_ arbitrary_targets_modified "$n.targets.json lists another bundle, signature left as it was"
pack "$R" $app 1.3.0
release "$R" "$T/b/$app-1.3.0.ota" --channel stable
"$EVIL_META" --in "$M/$n.targets.json" --out "$T/forged/$n.targets.json" --keep-signatures \
    --target "$app/$app-1.3.0.ota=$T/b/evil-1.2.0.ota"
rules repo "[{\"path\": \"/metadata/$n.targets.json\",
              \"substitute\": \"$T/forged/$n.targets.json\"}]"
keep D
m=$(mark repo)
refuse D "OTA_E_DIGEST\|OTA_E_LENGTH\|OTA_E_TOO_BIG" "targets.json" check
! fetched_since repo "$m" /targets/ || die "a bundle was fetched on forged targets"
kept D genuine
no_rules repo

# ---- endless data --------------------------------------------------------------------------
agent D check && agent D activate && agent D confirm || die "activating: $(cat "$T/err")"
[ "$(running D)" = 1.3.0 ] || die "D runs '$(running D)', want 1.3.0"
pack "$R" $app 1.4.0 300000
release "$R" "$T/b/$app-1.4.0.ota" --channel stable
endless() { # CASE DESCRIPTION PATH MODE CODE PATTERN
    case_ "$1" "$2"
    rules repo "[{\"path\": \"$3\", \"endless\": \"$4\"}]"
    keep D
    t0=$(ms)
    refuse D "$5" "$6" check
    t=$(($(ms) - t0))
    [ $t -lt 8000 ] || die "$1: took $t ms"
    printf '   in %s ms\n' "$t"
    kept D genuine
}
endless endless_timestamp "timestamp.json followed by zeros forever" \
    /metadata/timestamp.json after OTA_E_TOO_BIG "larger than 16384 bytes"
endless endless_timestamp_zeros "timestamp.json answered with zeros forever" \
    /metadata/timestamp.json zeros OTA_E_TOO_BIG "larger than 16384 bytes"
endless endless_root "the probe for the next root answered with zeros forever" \
    "/metadata/*.root.json" zeros OTA_E_TOO_BIG "larger than 524288 bytes"
v=$(latest snapshot)
endless endless_snapshot "$v.snapshot.json followed by zeros forever" \
    "/metadata/$v.snapshot.json" after OTA_E_TOO_BIG "$v.snapshot.json' is larger than"
endless endless_targets "$v.targets.json followed by zeros forever" \
    "/metadata/$v.targets.json" after OTA_E_TOO_BIG "$v.targets.json' is larger than"
endless endless_bundle "1.4.0's bundle followed by zeros forever" \
    "/targets/*" after OTA_E_LENGTH "is longer than"
part="$T/D/downloads/$(sha256sum <"$T/b/$app-1.4.0.ota" | cut -c1-64).part"
[ ! -f "$part" ] || [ "$(wc -c <"$part")" -le "$(wc -c <"$T/b/$app-1.4.0.ota")" ] ||
    die "the part file grew past the signed length"

case_ lie_length "timestamp.json announced as 10 GB"
rules repo '[{"path": "/metadata/timestamp.json", "lie_length": 10000000000}]'
keep D
refuse D OTA_E_TOO_BIG "larger than 16384 bytes" check
kept D genuine
no_rules repo
agent D check || die "1.4.0 after the endless bundle: $(cat "$T/err")"
cmp -s "$T/D/bundles/1.4.0/assets/big.bin" "$T/src/$app-1.4.0/assets/big.bin" ||
    die "1.4.0 is not the genuine release after the endless bundle"

# ---- slow retrieval ------------------------------------------------------------------------
agent D startup && agent D confirm || die "activating 1.4.0: $(cat "$T/err")"
[ "$(running D)" = 1.4.0 ] || die "D runs '$(running D)', want 1.4.0"
pack "$R" $app 1.5.0 300000
release "$R" "$T/b/$app-1.5.0.ota" --channel stable
config D "$URL" 3
slow() { # CASE DESCRIPTION RULE
    case_ "$1" "$2"
    rules repo "[$3]"
    keep D
    t0=$(ms)
    agent D startup || die "$1: startup failed: $(cat "$T/err")"
    t=$(($(ms) - t0))
    [ "$(cat "$T/out")" = "$T/D/current" ] || die "$1: startup printed '$(cat "$T/out")'"
    grep -q "check failed: check did not finish within 3 s" "$T/err" ||
        die "$1: the bound is not reported: $(cat "$T/err")"
    [ $t -ge 2900 ] && [ $t -lt 5500 ] || die "$1: startup took $t ms, bound 3 s"
    [ "$(running D)" = 1.4.0 ] || die "$1: D runs '$(running D)'"
    printf '   startup returned in %s ms (check_timeout_s 3), app runs %s\n' "$t" "$(running D)"
    kept D genuine
}
slow slow_timestamp "timestamp.json at 20 bytes/s" \
    '{"path": "/metadata/timestamp.json", "drip": 20}'
slow slow_bundle "1.5.0's bundle at 1000 bytes/s" '{"path": "/targets/*", "drip": 1000}'
slow slow_headers "the server holds its answer for 60 s" \
    '{"path": "/metadata/timestamp.json", "delay_headers": 60000}'
no_rules repo
config D "$URL"
agent D check || die "1.5.0 after slow retrieval: $(cat "$T/err")"
[ -d "$T/D/bundles/1.5.0" ] || die "1.5.0 not staged"
agent D activate && agent D confirm || die "activating 1.5.0: $(cat "$T/err")"

# ---- a server that fails, cuts transfers short, ignores ranges ----------------------------
case_ server_error "timestamp.json answered with status 500"
rules repo '[{"path": "/metadata/timestamp.json", "status": 500}]'
agent D gc || die "gc: $(cat "$T/err")" # so startup's own gc removes nothing below
keep D
refuse D OTA_E_NETWORK "server answered 500" check
kept D
agent D startup || die "startup with a failing server must still run the app"
grep -q "check failed: .*server answered 500" "$T/err" || die "startup: $(cat "$T/err")"
kept D

case_ truncated_bundle "1.6.0's bundle cut after 50000 bytes, then resumed from a server \
that ignores Range"
pack "$R" $app 1.6.0 200000
release "$R" "$T/b/$app-1.6.0.ota" --channel stable
rules repo '[{"path": "/targets/*", "truncate": 50000}]'
keep D
refuse D OTA_E_NETWORK "downloading release 1.6.0" check
kept D genuine
part="$T/D/downloads/$(sha256sum <"$T/b/$app-1.6.0.ota" | cut -c1-64).part"
[ "$(wc -c <"$part")" -eq 50000 ] || die "the part file holds $(wc -c <"$part") bytes, not 50000"
rules repo '[{"path": "/targets/*", "ignore_range": true}]'
m=$(mark repo)
agent D check || die "1.6.0 after a truncated transfer: $(cat "$T/err")"
[ -d "$T/D/bundles/1.6.0" ] || die "1.6.0 not staged"
cmp -s "$T/D/bundles/1.6.0/assets/big.bin" "$T/src/$app-1.6.0/assets/big.bin" ||
    die "1.6.0 is not the genuine release after a resumed transfer"
tail -n +"$((m + 1))" "$T/repo.log" | grep -q "/targets/.* bytes=50000- 200 " ||
    die "no range request for the rest: $(cat "$T/repo.log")"
no_rules repo
agent D activate && agent D confirm || die "activating 1.6.0: $(cat "$T/err")"

# ---- wrong software, extraneous targets ----------------------------------------------------
case_ wrong_app "a release of another app in the same repository"
pack "$R" com.example.other 9.0.0
release "$R" "$T/b/com.example.other-9.0.0.ota" --channel stable
keep D
agent D check || die "check: $(cat "$T/err")"
grep -q "up to date" "$T/out" || die "another app's release was taken: $(cat "$T/out")"
kept D genuine
refuse D OTA_E_INCOMPATIBLE "bundle is for app 'com.example.other'" \
    install "$T/b/com.example.other-9.0.0.ota"
kept D genuine

case_ wrong_runtime "a release for runtime 4.x on a 3.1 device"
RT=4.0..4.9 pack "$R" $app 9.0.0
release "$R" "$T/b/$app-9.0.0.ota" --channel stable
keep D
agent D check || die "check: $(cat "$T/err")"
grep -q "up to date" "$T/out" || die "a release for another runtime was taken: $(cat "$T/out")"
agent D explain || die "explain: $(cat "$T/err")"
grep -q "runtime .*no: device runtime 3.1, release needs 4.0..4.9" "$T/out" ||
    die "explain: $(cat "$T/out")"
kept D genuine
refuse D OTA_E_INCOMPATIBLE "does not run on runtime 3.1" install "$T/b/$app-9.0.0.ota"
kept D genuine

# ---- key compromise below the root threshold -----------------------------------------------
case_ root_below_threshold "a new root signed by one of the three root keys (2 needed)"
rv=$(latest root)
"$EVIL_META" --in "$M/$rv.root.json" --out "$T/forged/root-one-key.json" \
    --set "version=$((rv + 1))" --set roles.root.threshold=1 \
    --role-key "targets=$T/stranger.key" --key "$R/keys/root-1.key"
rules repo "[{\"path\": \"/metadata/$((rv + 1)).root.json\",
              \"substitute\": \"$T/forged/root-one-key.json\"}]"
keep D
refuse D OTA_E_THRESHOLD "root: 1 of 2 required signatures" check
kept D
no_rules repo

# ---- an attacker with the online keys: threshold, rollback, fast-forward -------------------
step "devices B and F, then an attacker holding the timestamp and snapshot keys"
config B "$URL"
config F "$URL"
for dev in B F; do
    agent $dev startup || die "$dev: first startup: $(cat "$T/err")"
    [ "$(running $dev)" = 1.6.0 ] || die "$dev runs '$(running $dev)'"
done
TSK="$R/keys/timestamp-1.key"
SNK="$R/keys/snapshot-1.key"
tv=$(tsver B)
sv=$(latest snapshot)
# forge_chain TS_VERSION SNAP_VERSION TARGETS_FILE: a snapshot SNAP_VERSION describing
# TARGETS_FILE and a timestamp TS_VERSION naming it, signed with the stolen online keys.
forge_chain() {
    "$EVIL_META" --in "$M/$sv.snapshot.json" --out "$T/forged/$2.snapshot.json" \
        --set "version=$2" --describe "targets.json=$3" --key "$SNK"
    "$EVIL_META" --in "$M/timestamp.json" --out "$T/forged/timestamp.json" \
        --set "version=$1" --describe "snapshot.json=$T/forged/$2.snapshot.json" --key "$TSK"
}
serve_forged() { # SNAP_VERSION [TARGETS_VERSION]
    _r="{\"path\": \"/metadata/timestamp.json\", \"substitute\": \"$T/forged/timestamp.json\"},
        {\"path\": \"/metadata/$1.snapshot.json\", \"substitute\": \"$T/forged/$1.snapshot.json\"}"
    if [ $# -gt 1 ]; then
        _r="$_r, {\"path\": \"/metadata/$2.targets.json\",
                  \"substitute\": \"$T/forged/$2.targets.json\"}"
    fi
    rules repo "[$_r]"
}
# What the online keys cannot touch: the release B runs and its trusted root and targets.
keep_offline() { # DEVICE
    { readlink "$T/$1/current"; ls "$T/$1/bundles"; cat "$T/$1/metadata/root.json" \
        "$T/$1/metadata/targets.json"; } | sha256sum >"$T/$1.offline"
}
kept_offline() { # DEVICE
    { readlink "$T/$1/current"; ls "$T/$1/bundles"; cat "$T/$1/metadata/root.json" \
        "$T/$1/metadata/targets.json"; } | sha256sum | cmp -s - "$T/$1.offline" ||
        die "$1: the release, the root or the targets changed"
    [ -z "$(ls -A "$T/$1/staging" 2>/dev/null)" ] || die "$1: staging holds $(ls "$T/$1/staging")"
}

case_ threshold_targets "targets listing a foreign bundle, signed by the snapshot key"
pack - $app 9.1.0 0 --key "$T/stranger.key"
mv "$T/b/$app-9.1.0.ota" "$T/b/evil-9.1.0.ota"
"$EVIL_META" --in "$M/$sv.targets.json" --out "$T/forged/$((sv + 1)).targets.json" \
    --set "version=$((sv + 1))" --target "$app/$app-1.6.0.ota=$T/b/evil-9.1.0.ota" --key "$SNK"
forge_chain $((tv + 1)) $((sv + 1)) "$T/forged/$((sv + 1)).targets.json"
serve_forged $((sv + 1)) $((sv + 1))
keep_offline B
m=$(mark repo)
refuse B OTA_E_THRESHOLD "targets: 0 of 1 required signatures" check
! fetched_since repo "$m" /targets/ || die "B fetched a bundle listed by forged targets"
kept_offline B

case_ online_rollback "a timestamp naming an older snapshot; a snapshot naming older targets"
"$EVIL_META" --in "$M/timestamp.json" --out "$T/forged/timestamp.json" \
    --set "version=$((tv + 2))" --describe "snapshot.json=$M/$((sv - 1)).snapshot.json" \
    --key "$TSK"
rules repo "[{\"path\": \"/metadata/timestamp.json\",
              \"substitute\": \"$T/forged/timestamp.json\"}]"
refuse B OTA_E_ROLLBACK "lists snapshot version $((sv - 1)), below the trusted $((sv + 1))" check
kept_offline B
forge_chain $((tv + 3)) $((sv + 2)) "$M/$((sv - 1)).targets.json"
serve_forged $((sv + 2))
refuse B OTA_E_ROLLBACK "lists 'targets.json' version $((sv - 1)), below the trusted $((sv + 1))" \
    check
kept_offline B
no_rules repo

case_ fast_forward "timestamp and snapshot pushed to version 1000000, then the keys rotated"
forge_chain 1000000 1000000 "$M/$sv.targets.json"
serve_forged 1000000
agent F check || die "F: the fast-forward is validly signed: $(cat "$T/err")"
[ "$(tsver F)" = 1000000 ] || die "F's timestamp is version $(tsver F)"
no_rules repo
pack "$R" $app 9.2.0
release "$R" "$T/b/$app-9.2.0.ota" --channel stable
refuse F OTA_E_ROLLBACK "below the trusted 1000000" check
[ ! -d "$T/F/bundles/9.2.0" ] || die "F staged 9.2.0 while fast-forwarded"
# Recovery (spec 5.3.11): new timestamp and snapshot keys through new root versions; the
# devices drop the timestamp and snapshot they trusted and take the genuine ones again.
"$PUB" rotate "$R" --role timestamp >/dev/null
"$PUB" rotate "$R" --role snapshot >/dev/null
archive "$R"
for dev in F B D; do
    agent $dev check || die "$dev did not recover after the rotation: $(cat "$T/err")"
    grep -q "9.2.0 is staged" "$T/out" || die "$dev: $(cat "$T/out")"
    [ "$(tsver $dev)" -lt 1000000 ] || die "$dev still trusts timestamp $(tsver $dev)"
    cmp -s "$T/$dev/metadata/root.json" "$M/root.json" || die "$dev did not follow the new root"
    genuine_meta $dev
    printf '   %s recovered: timestamp %s, root %s\n' "$dev" "$(tsver $dev)" "$(latest root)"
done

# ---- root rotation over several versions ---------------------------------------------------
step "repository R2, device C: root rotated 1 -> 2 -> 3 -> 4"
R2="$T/repo2"
"$PUB" init "$R2" --root-keys 1 >/dev/null
archive "$R2"
pack "$R2" $app 1.0.0
release "$R2" "$T/b/$app-1.0.0.ota" --channel stable
server_start r2 "$R2/public"
TRUST="$R2/public/metadata/1.root.json"
config C "http://127.0.0.1:$port_r2"
agent C startup || die "C: first startup: $(cat "$T/err")"

case_ root_rotation "three root rotations, the device follows each step of the chain"
rotate_root() { # THRESHOLD KEYNAME...
    _thr=$1
    shift
    _args=""
    for k in "$@"; do
        "$PUB" keygen "$R2/keys/$k.key" >/dev/null
        _args="$_args --key $R2/keys/$k.key"
    done
    # shellcheck disable=SC2086
    "$PUB" rotate "$R2" --role root $_args --threshold "$_thr" >/dev/null
    archive "$R2"
}
rotate_root 2 root2a root2b
agent C check || die "C after root 2: $(cat "$T/err")"
cmp -s "$T/C/metadata/root.json" "$R2/public/metadata/2.root.json" || die "C is not on root 2"
rotate_root 2 root3a root3b
rotate_root 1 root4
m=$(mark r2)
pack "$R2" $app 1.1.0
release "$R2" "$T/b/$app-1.1.0.ota" --channel stable
agent C check || die "C after root 4: $(cat "$T/err")"
grep -q "1.1.0 is staged" "$T/out" || die "C: $(cat "$T/out")"
cmp -s "$T/C/metadata/root.json" "$R2/public/metadata/4.root.json" || die "C is not on root 4"
fetched_since r2 "$m" /metadata/3.root.json && fetched_since r2 "$m" /metadata/4.root.json ||
    die "C did not walk 3.root.json and 4.root.json"
genuine_meta C

case_ root_rotated_away "a root 5 signed by keys that roots 2..4 no longer trust"
"$EVIL_META" --in "$R2/public/metadata/4.root.json" --out "$T/forged/5.root.json" \
    --set version=5 --role-key "root=$R2/keys/root-1.key" --set roles.root.threshold=1 \
    --role-key "targets=$T/stranger.key" --key "$R2/keys/root-1.key"
rules r2 "[{\"path\": \"/metadata/5.root.json\", \"substitute\": \"$T/forged/5.root.json\"}]"
keep C
refuse C OTA_E_THRESHOLD "root: 0 of 1 required signatures" check
kept C
"$EVIL_META" --in "$R2/public/metadata/4.root.json" --out "$T/forged/5.root.json" \
    --set version=5 --role-key "root=$R2/keys/root2a.key" --role-key "root=$R2/keys/root2b.key" \
    --key "$R2/keys/root2a.key" --key "$R2/keys/root2b.key"
refuse C OTA_E_THRESHOLD "root: 0 of 1 required signatures" check
kept C

case_ rollback_root "root 4, validly signed, served again as 5.root.json"
rules r2 "[{\"path\": \"/metadata/5.root.json\",
            \"substitute\": \"$R2/public/metadata/4.root.json\"}]"
refuse C OTA_E_ROLLBACK "root version 5: root has version 4, expected 5" check
kept C
no_rules r2

# The servers stop cleanly on SIGTERM (a sanitizer build reports leaks in the status).
stop_servers
for s in repo mirror r2; do
    [ "$(cat "$T/$s.status")" = 0 ] ||
        die "ota-evil-server $s exited $(cat "$T/$s.status"): $(cat "$T/$s.stderr")"
done
echo "attacks: all cases passed"
