# ota-publish end to end on the command line: init, pack, release, promote, rollout, yank,
# republish, refresh, rotate, verify, inspect; and every bad input refused with a clear message
# while the repository stays byte-for-byte as it was.
. "$OTA_TOP/tests/lib/assert.sh"
export OTA_PASSPHRASE="correct horse battery staple"
R="$T/repo"

mkapp() { # DIR VERSION
    mkdir -p "$1/pages" "$1/assets"
    printf 'console.log("app %s");\n' "$2" >"$1/index.js"
    printf '<h1>%s</h1>\n' "$2" >"$1/pages/home.html"
    printf '{"entities":["Visit"]}\n' >"$1/model.json"
    head -c 100000 /dev/urandom >"$1/assets/logo.bin"
}

step "init"
"$PUB" init "$R" --root-keys 3 --root-threshold 2 --expires timestamp=2
[ "$(stat -c %a "$R/keys/root-1.key")" = 600 ] || die "key file mode is not 0600"
[ -f "$R/public/metadata/1.root.json" ] && [ -f "$R/public/metadata/timestamp.json" ]
"$PUB" verify "$R"
expect_fail 1 "already holds a repository" "$PUB" init "$R"

step "pack and release v1"
mkapp "$T/app1" 1.0.0
"$PUB" pack "$T/app1" -o "$T/a-1.ota" --repo "$R" --app com.example.field --version 1.0.0 \
    --model m1 --runtime 3.0..3.9 --notes "first release"
"$PUB" inspect "$T/a-1.ota" --repo "$R" | grep -q "verified with the repository's targets keys"
"$PUB" inspect "$T/a-1.ota" --json | grep -q '"version": "1.0.0"'
"$PUB" release "$R" "$T/a-1.ota" --channel stable
"$PUB" verify "$R"
"$PUB" list "$R" | grep -q "com.example.field *1.0.0 *m1 *live *stable:100%"

step "bad input leaves the repository unchanged"
before=$(tree_sum "$R")
expect_fail 1 "not higher than 1.0.0" "$PUB" release "$R" "$T/a-1.ota"
expect_fail 1 "cannot open" "$PUB" release "$R" "$T/missing.ota"
mkapp "$T/app2" 2.0.0
"$PUB" pack "$T/app2" -o "$T/a-2-m2.ota" --repo "$R" --app com.example.field --version 2.0.0 --model m2
expect_fail 1 "data model changes from 'm1'" "$PUB" release "$R" "$T/a-2-m2.ota"
expect_fail 1 "wrong passphrase" env OTA_PASSPHRASE=wrong "$PUB" release "$R" "$T/a-2-m2.ota" --breaking
"$PUB" keygen "$T/stranger.key"
"$PUB" pack "$T/app2" -o "$T/stranger.ota" --key "$T/stranger.key" --app com.example.field \
    --version 2.0.0 --model m1
expect_fail 1 "targets keys" "$PUB" release "$R" "$T/stranger.ota"
head -c 1000 "$T/a-2-m2.ota" >"$T/truncated.ota"
expect_fail 1 "truncated.ota" "$PUB" release "$R" "$T/truncated.ota"
expect_fail 2 "rollout must be" "$PUB" release "$R" "$T/a-2-m2.ota" --rollout 101
[ "$(tree_sum "$R")" = "$before" ] || die "a refused command changed the repository"

step "pack refuses unsafe trees and never overwrites keys"
mkapp "$T/evil" 9
ln -s /etc/passwd "$T/evil/passwd"
expect_fail 1 "passwd" "$PUB" pack "$T/evil" -o "$T/evil.ota" --repo "$R" --app com.example.field --version 9 --model m1
[ ! -e "$T/evil.ota" ] || die "a refused pack left its output"
rm "$T/evil/passwd"; mkfifo "$T/evil/pipe"
expect_fail 1 "pipe" "$PUB" pack "$T/evil" -o "$T/evil.ota" --repo "$R" --app com.example.field --version 9 --model m1
keybefore=$(sha256sum "$T/stranger.key")
expect_fail 1 "exists" "$PUB" keygen "$T/stranger.key"
[ "$(sha256sum "$T/stranger.key")" = "$keybefore" ] || die "keygen overwrote a key"

step "bridge release with reads_models, then a breaking release"
mkapp "$T/app15" 1.5.0
"$PUB" pack "$T/app15" -o "$T/a-15.ota" --repo "$R" --app com.example.field --version 1.5.0 \
    --model m2 --reads-model m1
"$PUB" release "$R" "$T/a-15.ota" --channel beta
"$PUB" promote "$R" --from beta --to stable --rollout 20
"$PUB" rollout "$R" --channel stable --percent 50
"$PUB" list "$R" | grep -q "1.5.0 *m2 *live *beta:100% stable:50%"
"$PUB" pack "$T/app2" -o "$T/a-2.ota" --repo "$R" --app com.example.field --version 2.0.0 --model m3
"$PUB" release "$R" "$T/a-2.ota" --breaking --mandatory
"$PUB" list --json "$R" | grep -q '"breaking": true'

step "yank and republish (server-side rollback)"
"$PUB" yank "$R" --version 2.0.0
expect_fail 1 "already yanked" "$PUB" yank "$R" --version 2.0.0
"$PUB" republish "$R" --version 1.5.0 --as 2.0.1 --channel stable
"$PUB" list "$R" | grep -q "2.0.1 *m2 *live *stable:100%"
expect_fail 1 "not higher" "$PUB" republish "$R" --version 1.0.0 --as 1.9.0
"$PUB" verify "$R"

step "refresh with the online keys only, rotation of targets and root keys"
"$PUB" refresh "$R"
"$PUB" refresh "$R" --snapshot
"$PUB" rotate "$R" --role timestamp
"$PUB" rotate "$R" --role targets
"$PUB" verify "$R"
"$PUB" keygen "$T/newroot1.key"; "$PUB" keygen "$T/newroot2.key"
"$PUB" rotate "$R" --role root --key "$T/newroot1.key" --key "$T/newroot2.key" --threshold 2
"$PUB" verify "$R"
ls "$R/public/metadata" | grep -q '^4.root.json$' || die "expected root version 4"
mv "$R/keys" "$T/keys.away"; mkdir -m 700 "$R/keys"
expect_fail 1 "required keys are available" "$PUB" refresh "$R"
rm -rf "$R/keys"; mv "$T/keys.away" "$R/keys"

step "expired metadata is reported"
faketime -f '+400d' "$PUB" verify "$R" >"$T/v.out" 2>&1 && die "verify accepted expired metadata"
grep -q "expired" "$T/v.out" || die "verify did not name the expiry"

step "tampering is detected"
for f in "$R"/public/targets/com.example.field/*2.0.1.ota; do
    printf 'x' | dd of="$f" bs=1 seek=100 conv=notrunc 2>/dev/null
done
expect_fail 1 "sha256\|digest\|match" "$PUB" verify "$R"
echo "publish_cli: all checks passed"
