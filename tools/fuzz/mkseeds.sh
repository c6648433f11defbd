#!/bin/sh
# Regenerates the seed corpora in tests/fuzz/<harness>/ from the real code, so every seed is a
# document the product itself writes or reads:
#   tuf/      every role's metadata of a repository made by ota-publish (init, release, rotate)
#   bundle/   a bundle packed and signed by ota-publish, and its tar stream (zstd -d)
#   release/  the release metadata inside that bundle, and version strings
#   cjson/    the canonical JSON vectors of formats/canonical-json.md and the TUF metadata
#   config/   agent configurations as formats/agent.md documents them
#   sync_request/  request bodies that the agent's sync client POSTed (captured by a tiny
#             server), with the URL's model on the first line
# Seeds are small; the fuzzers grow their own corpora under build-fuzz/corpus.
#   usage: tools/fuzz/mkseeds.sh BUILD   (BUILD/bin holds ota-publish and ota-agent)
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(cd "$1/bin" && pwd)
out="$top/tests/fuzz"
T=$(mktemp -d)
srv=""
cleanup() {
    [ -n "$srv" ] && kill "$srv" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT INT TERM
export OTA_PASSPHRASE="fuzz seeds"

# A repository with a bridge release, then a root rotation so root.json is version 2.
"$bin/ota-publish" init "$T/repo" --unencrypted-online >/dev/null
mkdir -p "$T/app/pages"
printf 'console.log("field app 1.4.0");\n' >"$T/app/index.js"
printf '<h1>Inspections</h1>\n' >"$T/app/pages/home.html"
"$bin/ota-publish" pack "$T/app" -o "$T/app.ota" --repo "$T/repo" --app com.example.field \
    --version 1.4.0 --model m2 --reads-model m1 --runtime 3.0..3.9 --min-agent 0.1 \
    --notes "bridge release: syncs m1 data" >/dev/null 2>&1
"$bin/ota-publish" release "$T/repo" "$T/app.ota" --channel stable --rollout 20 >/dev/null
"$bin/ota-publish" rotate "$T/repo" --role root >/dev/null
md="$T/repo/public/metadata"

mkdir -p "$out/tuf" "$out/bundle" "$out/release" "$out/cjson" "$out/config" \
    "$out/sync_request"
cp "$md/1.root.json" "$out/tuf/root-1.json"
cp "$md/2.root.json" "$out/tuf/root-2.json"
cp "$md/timestamp.json" "$out/tuf/timestamp.json"
cp "$(ls "$md"/*.snapshot.json | sort -V | tail -n 1)" "$out/tuf/snapshot.json"
cp "$(ls "$md"/*.targets.json | sort -V | tail -n 1)" "$out/tuf/targets.json"
cp "$out/tuf/targets.json" "$out/cjson/tuf-targets.json"
cp "$out/tuf/root-1.json" "$out/cjson/tuf-root.json"

cp "$T/app.ota" "$out/bundle/app.ota"
zstd -q -d -c "$T/app.ota" >"$out/bundle/app.tar"

"$bin/ota-publish" inspect "$T/app.ota" --json 2>/dev/null |
    node -e 'let s="";process.stdin.on("data",c=>s+=c).on("end",()=>
        process.stdout.write(JSON.stringify(JSON.parse(s).signed.release)))' \
        >"$out/release/bridge.json"
printf '1.4.0\n1.4' >"$out/release/versions.txt"
printf '4294967295.0.0.1' >"$out/release/version-max.txt"
printf 'com.example.field' >"$out/release/id.txt"

cat >"$out/config/minimal.json" <<'CFG'
{"repository_url":"https://updates.example.com/field","state_dir":"/var/lib/ota",
 "app":"com.example.field","runtime_version":"3.2","trusted_root":"/usr/share/field/root.json"}
CFG
cat >"$out/config/full.json" <<'CFG'
{
  "repository_url": "https://updates.example.com/field",
  "state_dir": "/var/lib/ota",
  "app": "com.example.field",
  "channel": "beta",
  "runtime_version": "3.2.1",
  "trusted_root": "/usr/share/field/root.json",
  "poll_interval_s": 3600,
  "max_bundle_bytes": 1073741824,
  "connect_timeout_s": 10,
  "low_speed_time_s": 30,
  "check_timeout_s": 20,
  "ca_file": "/etc/ssl/certs/field-ca.pem",
  "keep_releases": 3,
  "trial_launches": 3,
  "factory_bundle": "/usr/share/field/factory.ota",
  "outbox_db": "/data/field/app.db",
  "sync_url": "https://sync.example.com/v1/sync/{model}",
  "sync_token_file": "/data/field/sync-token"
}
CFG

# Two models of pending changes, synced by the agent's client to a server that records what
# it receives and accepts everything.
node -e '
const http = require("http"), fs = require("fs");
let n = 0;
const s = http.createServer((req, res) => {
  let b = [];
  req.on("data", c => b.push(c)).on("end", () => {
    const body = Buffer.concat(b), model = decodeURIComponent(req.url.split("/").pop());
    fs.writeFileSync(process.argv[1] + "/req-" + (++n) + ".txt",
                     Buffer.concat([Buffer.from(model + "\n"), body]));
    const ids = JSON.parse(body).changes.map(c => c.id);
    res.setHeader("Content-Type", "application/json");
    res.end(JSON.stringify({accepted: ids, rejected: []}));
  });
});
s.listen(0, "127.0.0.1", () => fs.writeFileSync(process.argv[1] + "/port", "" + s.address().port));
' "$T" &
srv=$!
i=0
while [ ! -s "$T/port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
cat >"$T/agent.json" <<CFG
{"repository_url":"file://$T/repo/public","state_dir":"$T/state","app":"com.example.field",
 "runtime_version":"3.2","trusted_root":"$md/1.root.json","outbox_db":"$T/app.db",
 "sync_url":"http://127.0.0.1:$(cat "$T/port")/sync/{model}"}
CFG
a() { "$bin/ota-agent" --config "$T/agent.json" "$@" >/dev/null; }
a outbox add --model m1 --entity Inspection --op insert --id c-0001 \
    --payload '{"site":"north-7","lat":52.37,"lon":4.89,"ok":true,"notes":null}'
a outbox add --model m1 --entity Inspection --op update --id c-0002 \
    --payload '{"site":"north-7","count":3,"tags":["pole","cable"]}'
a outbox add --model m1 --entity Photo --op delete --id c-0003 --payload '{"id":"p-9"}'
a outbox add --model "m2.field" --entity Visit --op insert --id c-0004 \
    --payload '{"visit":"v-1","at":"2026-11-24T08:00:00Z"}'
a sync
for f in "$T"/req-*.txt; do
    cp "$f" "$out/sync_request/client-$(head -n 1 "$f").txt"
done
echo "seeds written to $out"
