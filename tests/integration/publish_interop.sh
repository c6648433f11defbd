# Peer interop: a repository made by ota-publish, served by nginx on 127.0.0.1, is refreshed and a
# bundle downloaded by tuf-js (an independent TUF client), which also reads back the custom
# metadata. tuf-js must reject a tampered bundle and a tampered targets metadata file.
. "$OTA_TOP/tests/lib/assert.sh"
. "$OTA_TOP/tests/lib/nginx.sh"
. "$OTA_TOP/tests/lib/npm.sh"
export OTA_PASSPHRASE=interop
R="$T/repo"
CLIENT="$OTA_TOP/tests/interop/tufjs-client.mjs"

interop_npm_install

step "publish with ota-publish"
"$PUB" init "$R" --root-keys 2 --root-threshold 2
mkdir -p "$T/app/pages"
printf 'main();\n' >"$T/app/main.js"
printf '<p>hi</p>\n' >"$T/app/pages/a.html"
"$PUB" pack "$T/app" -o "$T/b.ota" --repo "$R" --app com.example.field --version 1.2.0 \
    --model m1 --runtime 3.0..3.9 --notes "control: tab	and é"
"$PUB" release "$R" "$T/b.ota" --channel stable --rollout 40
# rotate root once so tuf-js has to walk the root chain from version 1
"$PUB" rotate "$R" --role root

nginx_start "$R/public"
add_cleanup nginx_stop

fetch() { # DIR: a fresh tuf-js client state
    rm -rf "$1"; mkdir -p "$1/meta" "$1/tgt"
    cp "$R/public/metadata/1.root.json" "$1/root.json"
    node "$CLIENT" --metadata-url "$NGINX_URL/metadata" --targets-url "$NGINX_URL/targets" \
        --root "$1/root.json" --metadata-dir "$1/meta" --target-dir "$1/tgt" \
        --target com.example.field/com.example.field-1.2.0.ota --print-custom
}

step "tuf-js refreshes, downloads and reads custom metadata"
fetch "$T/c1" >"$T/custom.json"
cmp "$T/b.ota" "$T/c1/tgt/"* || die "tuf-js downloaded different bytes"
grep -q '"model":"m1"' "$T/custom.json" || die "custom metadata not read back: $(cat "$T/custom.json")"
grep -q '"stable":40' "$T/custom.json" || die "channel rollout not read back"

step "tuf-js rejects a tampered bundle"
f=$(ls "$R"/public/targets/com.example.field/*.ota)
cp "$f" "$T/orig.ota"
printf 'X' | dd of="$f" bs=1 seek=50 conv=notrunc 2>/dev/null
if fetch "$T/c2" >/dev/null 2>"$T/err2"; then die "tuf-js accepted a tampered bundle"; fi
cat "$T/err2"
cp "$T/orig.ota" "$f"

step "tuf-js rejects a tampered targets metadata file"
tf=$(ls "$R"/public/metadata/*.targets.json | sort -V | tail -n 1)
sed -i 's/"stable":40/"stable":99/' "$tf"
if fetch "$T/c3" >/dev/null 2>"$T/err3"; then die "tuf-js accepted tampered targets metadata"; fi
cat "$T/err3"
echo "publish_interop: tuf-js agrees with ota-publish"
