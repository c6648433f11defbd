#!/bin/sh
# Hostile bundles sideloaded with `ota-agent install FILE`. tools/ota-evil-bundle writes them
# with a manifest validly signed by the repository's targets key, so only the content is
# hostile: path traversal (relative and absolute), symbolic and hard links leaving the tree, a
# device node, a setuid file, a duplicate member, more bytes than declared, a zstd bomb, a
# window over the cap, a truncated stream, manifest or payload changed after signing, members
# missing or extra, and a bundle signed by a key the device does not trust. Each must be
# refused with the error naming the problem, write nothing outside its staging directory (a
# canary tree surrounds the state directory, whose parent is the test's root), leave no
# staging behind and keep the device on the release it runs.
. "$OTA_TOP/tests/lib/assert.sh"
export OTA_PASSPHRASE="hostile passphrase"

EVIL_BUNDLE="$OTA_BIN/ota-evil-bundle"
app=com.example.field
W="$T/work"          # everything the test writes but the device and the canaries
C="$T/canary"        # canary tree; the device's state directory is inside it
STATE="$C/state"
R="$W/repo"
TOKEN="pwned-$$"     # the name every escape tries to create
mkdir -p "$W/b" "$W/app" "$C/sub"
echo "canary a" >"$C/a"
echo "canary c" >"$C/sub/c"
echo "the file a hard link would alias" >"$C/victim"
echo "root canary" >"$T/top"

# Everything under the test's root except the state directory and the work area.
canary_sum() {
    (cd "$T" && find . -path ./work -prune -o -path ./canary/state -prune -o \
        -printf '%p %y %m %s %l\n' | LC_ALL=C sort &&
        find . -path ./work -prune -o -path ./canary/state -prune -o -type f -print0 |
        LC_ALL=C sort -z | xargs -0 -r sha256sum) | sha256sum | cut -d' ' -f1
}
# What the device holds: current, releases, trusted metadata, history; staging must be empty.
device_sum() {
    { readlink "$STATE/current"; tree_sum "$STATE/bundles"; tree_sum "$STATE/metadata"
      "$AGENT" --config "$W/agent.json" history --json; } | sha256sum | cut -d' ' -f1
}

"$PUB" init "$R" --root-keys 1 >/dev/null
TK="$R/keys/targets-1.key"
cat >"$W/agent.json" <<EOF
{"repository_url": "http://127.0.0.1:9", "state_dir": "$STATE", "app": "$app",
 "runtime_version": "3.1", "trusted_root": "$R/public/metadata/1.root.json"}
EOF
agent() { "$AGENT" --config "$W/agent.json" "$@" >"$W/out" 2>"$W/err"; }
running() { sed 's/.*"version":"\([^"]*\)".*/\1/' "$STATE/current/assets/app.json"; }
rel() { # VERSION
    printf '{"app":"%s","version":"%s","model":"m1","reads_models":[],' "$app" "$1"
    printf '"runtime":{"min":"3.0","max":"3.9"},"min_agent":"0.1","mandatory":false}'
}
evil() { # KIND VERSION [options]: $W/b/KIND.ota signed with the targets key unless --seed
    _k=$1 _v=$2
    shift 2
    case " $* " in *" --seed "*) ;; *) set -- --key "$TK" "$@" ;; esac
    "$EVIL_BUNDLE" --kind "${_k%%+*}" --out "$W/b/$_k.ota" --release "$(rel "$_v")" "$@" ||
        die "ota-evil-bundle $_k"
}

# The canary sum sees a file appear (so its silence below means something).
before=$(canary_sum)
echo x >"$C/$TOKEN-control"
[ "$(canary_sum)" != "$before" ] || die "the canary sum does not see a new file"
rm "$C/$TOKEN-control"
[ "$(canary_sum)" = "$before" ] || die "the canary sum is not stable"

step "the device runs 1.0.0 (ota-publish pack), then 1.1.0 (ota-evil-bundle --kind valid)"
mkdir -p "$W/app/assets"
echo "console.log('1.0.0');" >"$W/app/index.js"
echo '{"version":"1.0.0"}' >"$W/app/assets/app.json"
"$PUB" pack "$W/app" -o "$W/b/1.0.0.ota" --repo "$R" --app $app --version 1.0.0 --model m1 \
    --runtime 3.0..3.9 2>/dev/null >/dev/null
agent install "$W/b/1.0.0.ota" || die "install 1.0.0: $(cat "$W/err")"
evil valid 1.1.0
agent install "$W/b/valid.ota" || die "a valid generated bundle was refused: $(cat "$W/err")"
[ "$(running)" = 1.1.0 ] || die "running '$(running)' after the valid bundle"

# hostile NAME CODE PATTERN: installing $W/b/NAME.ota must fail naming CODE and PATTERN, and
# change nothing but its own (removed) staging directory.
hostile() {
    _name=$1 _code=$2 _pat=$3
    _canary=$(canary_sum)
    _device=$(device_sum)
    _t0=$(date +%s%3N)
    set +e
    agent install "$W/b/$_name.ota"
    _rc=$?
    set -e
    _t=$(($(date +%s%3N) - _t0))
    _msg=$(grep '^ota-agent' "$W/err" | tail -n 1)
    [ $_rc -eq 1 ] || die "$_name: exit $_rc, expected a refusal: $(cat "$W/out" "$W/err")"
    case "$_msg" in *"($_code)") ;; *) die "$_name: not $_code: $_msg" ;; esac
    printf '%s\n' "$_msg" | grep -q -- "$_pat" || die "$_name: does not say '$_pat': $_msg"
    [ "$(canary_sum)" = "$_canary" ] || die "$_name: something was written outside staging"
    [ "$(device_sum)" = "$_device" ] || die "$_name: the device's releases or history changed"
    [ -z "$(ls -A "$STATE/staging")" ] || die "$_name: staging holds $(ls "$STATE/staging")"
    [ "$(running)" = 1.1.0 ] || die "$_name: running '$(running)'"
    _found=$(find "$T" /tmp -maxdepth 4 -name "$TOKEN*" 2>/dev/null | head -n 1)
    [ -z "$_found" ] || die "$_name: an escape created '$_found'"
    [ $_t -lt 10000 ] || die "$_name: took $_t ms"
    printf '   %-18s refused in %4s ms: %s\n' "$_name" "$_t" "${_msg#ota-agent: install: }"
}

step "hostile bundles, each refused with nothing written outside staging"
evil dotdot 2.0.0 --escape "../../../$TOKEN"
hostile dotdot OTA_E_UNSAFE_PATH "'../../../$TOKEN' has an empty, '.' or '..' component"
evil dotdot+deep 2.0.0 --escape "../../../../../../../../../../tmp/$TOKEN"
hostile dotdot+deep OTA_E_UNSAFE_PATH "'..' component"
evil dotdot-manifest 2.0.0 --escape "../../../$TOKEN"
hostile dotdot-manifest OTA_E_UNSAFE_PATH "manifest: path '../../../$TOKEN'"
evil absolute 2.0.0 --escape "$C/$TOKEN"
hostile absolute OTA_E_UNSAFE_PATH "'$C/$TOKEN' is absolute"
evil absolute-manifest 2.0.0 --escape "$C/$TOKEN"
hostile absolute-manifest OTA_E_UNSAFE_PATH "manifest: path '$C/$TOKEN' is absolute"
evil symlink 2.0.0 --escape ../../..
hostile symlink OTA_E_UNSAFE_PATH "'link' is a symbolic link"
evil symlink+abs 2.0.0 --escape "$C"
hostile symlink+abs OTA_E_UNSAFE_PATH "'link' is a symbolic link"
evil hardlink 2.0.0 --escape "$C/victim"
hostile hardlink OTA_E_UNSAFE_PATH "'hl' is a hard link"
evil hardlink+rel 2.0.0 --escape ../../../victim
hostile hardlink+rel OTA_E_UNSAFE_PATH "'hl' is a hard link"
evil device 2.0.0
hostile device OTA_E_UNSAFE_PATH "'dev' is a device"
evil setuid 2.0.0
hostile setuid OTA_E_UNSAFE_PATH "'index.js' has mode 4755 (setuid or setgid)"
evil duplicate 2.0.0
hostile duplicate OTA_E_FORMAT "'index.js' appears twice"
evil duplicate-mid 2.0.0
hostile duplicate-mid OTA_E_FORMAT "'assets/app.json' appears twice"
evil oversize 2.0.0
hostile oversize OTA_E_LENGTH "'index.js' has [0-9]* bytes in the tar, [0-9]* in the manifest"
evil bomb 2.0.0 --bomb-bytes 4294967296
[ "$(wc -c <"$W/b/bomb.ota")" -lt 300000 ] || die "the bomb is not small"
hostile bomb OTA_E_TOO_BIG "larger than the manifest's entries allow"
evil window 2.0.0
hostile window OTA_E_TOO_BIG "window over 8388608 bytes"
evil truncated 2.0.0
hostile truncated OTA_E_FORMAT "truncated"
evil manifest-changed 2.0.0
hostile manifest-changed OTA_E_THRESHOLD "targets: 0 of 1 required signatures"
evil payload-changed 2.0.0
hostile payload-changed OTA_E_DIGEST "'index.js' does not match its sha256"
evil extra-entry 2.0.0
hostile extra-entry OTA_E_FORMAT "'zz-extra' is not in the manifest"
evil missing-entry 2.0.0
hostile missing-entry OTA_E_FORMAT "ends before 'zz-missing'"
evil valid+untrusted 2.0.0 --seed "$(printf '%064d' 7)"
hostile valid+untrusted OTA_E_THRESHOLD "0 of 1 required signatures"

step "the device still takes a good bundle"
evil valid+after 2.0.0
agent install "$W/b/valid+after.ota" || die "install after the hostile ones: $(cat "$W/err")"
[ "$(running)" = 2.0.0 ] || die "running '$(running)'"
echo "hostile_bundles: all cases passed"
