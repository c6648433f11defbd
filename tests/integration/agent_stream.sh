#!/bin/sh
# A check downloads and stages in one pass (agent/stream.c): the bundle is verified and
# extracted while it arrives, and appended to downloads/<sha256>.part for a resume.
#   - a straight install gives the packed tree, leaves no part file and no staging;
#   - a check killed mid-stream, and a server that dies mid-stream, leave a part file and no
#     staging; the next check resumes from the part file's size (Range) and gives the same tree;
#   - a server that ignores Range: the download restarts from 0 and drops what it had;
#   - a part file whose prefix is not the signed bytes, but still a valid bundle (the zstd
#     window descriptor changed: only the whole-stream SHA-256 can tell), partial or complete:
#     OTA_E_DIGEST, discarded, nothing staged; the next check downloads from byte 0;
#   - a part file with a changed payload byte: refused by the file's digest, discarded;
#   - a server that sends other bytes (same length) than the signed ones: OTA_E_DIGEST;
#   - peak memory of a check staging a 48 MiB bundle stays under 32 MiB.
. "$OTA_TOP/tests/lib/assert.sh"
. "$OTA_TOP/tests/lib/nginx.sh"
export OTA_PASSPHRASE="stream test"
app=com.example.stream
R="$T/repo"
state="$T/state"
slow_pid=""
py_pid=""
stop_servers() {
    nginx_stop || true
    [ -z "$slow_pid" ] || { kill "$slow_pid" 2>/dev/null; wait "$slow_pid" 2>/dev/null; } || true
    [ -z "$py_pid" ] || { kill "$py_pid" 2>/dev/null; wait "$py_pid" 2>/dev/null; } || true
}
add_cleanup stop_servers

# A tree of incompressible files (zstd stores them as raw blocks) and a few text files.
mktree() { # dir version kib
    mkdir -p "$1/assets/img" "$1/pages"
    echo "console.log('$2')" >"$1/index.js"
    for p in home visit list; do echo "<h1>$p $2</h1>" >"$1/pages/$p.html"; done
    i=0
    while [ $i -lt 6 ]; do
        head -c $(($3 * 1024 / 6)) /dev/urandom >"$1/assets/img/pic$i.bin"
        i=$((i + 1))
    done
}

publish() { # version kib
    mktree "$T/src/$1" "$1" "$2"
    "$PUB" pack "$T/src/$1" -o "$T/$1.ota" --repo "$R" --app "$app" --version "$1" --model m1 \
        --runtime 1.0..9.9 >/dev/null 2>&1 || die "pack $1"
    "$PUB" release "$R" "$T/$1.ota" >/dev/null || die "release $1"
}

config() { # url
    cat >"$T/agent.json" <<EOF
{"repository_url": "$1", "state_dir": "$state", "app": "$app", "runtime_version": "1.0",
 "trusted_root": "$R/public/metadata/1.root.json", "connect_timeout_s": 2,
 "low_speed_time_s": 5}
EOF
}

agent() { "$AGENT" --config "$T/agent.json" "$@" >"$T/out" 2>"$T/err"; }

# check must exit 1 naming CODE; its stderr is then in $T/err.
check_fails() { # code
    expect_fail 1 "$1" "$AGENT" --config "$T/agent.json" check
    cp "$T/.err" "$T/err"
}

sha_of() { sha256sum "$1" | cut -c1-64; }
part_of() { echo "$state/downloads/$(sha_of "$T/$1.ota").part"; }
size_of() { if [ -f "$1" ]; then wc -c <"$1" | tr -d ' '; else echo 0; fi; }

# Paths, types, modes and contents below DIR (not DIR itself: a bundle does not carry the
# mode of its top directory).
below_sum() {
    (cd "$1" && find . -mindepth 1 -printf '%p %y %m %s\n' | LC_ALL=C sort &&
        find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum) | sha256sum
}

same_tree() { # version
    [ -d "$state/bundles/$1" ] || die "bundles/$1 is missing"
    [ "$(below_sum "$T/src/$1")" = "$(below_sum "$state/bundles/$1")" ] ||
        die "bundles/$1 differs from the packed tree"
}

no_leftovers() { # version
    [ -z "$(ls "$state/staging")" ] || die "staging not empty: $(ls "$state/staging")"
    [ ! -e "$(part_of "$1")" ] || die "part file of $1 left behind"
}

# The same bundle with another zstd window size (2 MiB -> 2.25 MiB): valid, same tree, same
# length, other bytes, so only the stream's SHA-256 refuses it.
window_variant() { # in out
    cp "$1" "$2"
    fhd=$(od -An -tu1 -j4 -N1 "$2" | tr -d ' ')
    wd=$(od -An -tu1 -j5 -N1 "$2" | tr -d ' ')
    [ $((fhd & 0x23)) -eq 0 ] || die "unexpected zstd frame header $fhd"
    [ $((wd & 7)) -lt 7 ] && [ $((wd >> 3)) -le 12 ] || die "unexpected window descriptor $wd"
    printf "\\$(printf %o $((wd + 1)))" | dd of="$2" bs=1 seek=5 conv=notrunc 2>/dev/null
    [ "$(zstd -dc "$1" | sha256sum)" = "$(zstd -dc "$2" | sha256sum)" ] ||
        die "the window variant does not decompress to the same tar"
    cmp -s "$1" "$2" && die "the window variant is the same file"
    return 0
}

start_slow() { # rate
    node "$OTA_TOP/tests/lib/slow-http.mjs" "$R/public" "$1" >"$T/slow.port" 2>>"$T/slow.log" &
    slow_pid=$!
    n=0
    while [ ! -s "$T/slow.port" ]; do
        n=$((n + 1)); [ $n -lt 200 ] || die "slow server did not start"; sleep 0.05
    done
    config "http://127.0.0.1:$(cat "$T/slow.port")"
}

stop_slow() {
    kill "$slow_pid"; wait "$slow_pid" 2>/dev/null || true; slow_pid=""; rm -f "$T/slow.port"
}

wait_part() { # file bytes
    n=0
    while [ "$(size_of "$1")" -lt "$2" ]; do
        n=$((n + 1)); [ $n -lt 300 ] || die "download did not start"; sleep 0.05
    done
}

"$PUB" init "$R" >/dev/null
nginx_start "$R/public" || die "nginx"
config "$NGINX_URL"

step "a straight install: the packed tree, no part file, no staging"
publish 1.0.0 512
agent startup || die "startup: $(cat "$T/err")"
same_tree 1.0.0
no_leftovers 1.0.0
[ "$(readlink "$state/current")" = bundles/1.0.0 ] || die "current is $(readlink "$state/current")"

step "check killed mid-stream: resumed from the part file's size, same tree"
publish 1.1.0 2048
part=$(part_of 1.1.0)
size=$(size_of "$T/1.1.0.ota")
start_slow 600000
"$AGENT" --config "$T/agent.json" check >/dev/null 2>&1 &
chk=$!
wait_part "$part" 400000
kill -KILL "$chk"
wait "$chk" 2>/dev/null || true
have=$(size_of "$part")
[ "$have" -gt 0 ] && [ "$have" -lt "$size" ] || die "part file has $have of $size bytes"
[ ! -d "$state/bundles/1.1.0" ] || die "staged from a killed download"
agent check || die "check after the kill: $(cat "$T/err")"
grep -q "1.1.0 is staged" "$T/out" || die "1.1.0 not staged: $(cat "$T/out")"
grep -q "$(sha_of "$T/1.1.0.ota").*bytes=$have- 206 $((size - have))" "$T/slow.log" ||
    die "did not resume from byte $have: $(cat "$T/slow.log")"
same_tree 1.1.0
no_leftovers 1.1.0

step "server gone mid-stream: the check fails, keeps the part file, the next one resumes"
publish 1.2.0 2048
part=$(part_of 1.2.0)
size=$(size_of "$T/1.2.0.ota")
: >"$T/slow.log"
"$AGENT" --config "$T/agent.json" check >"$T/out" 2>"$T/err" &
chk=$!
wait_part "$part" 400000
stop_slow
set +e
wait "$chk"
rc=$?
set -e
[ $rc -eq 1 ] || die "check with the server gone exited $rc: $(cat "$T/err")"
grep -q -e OTA_E_NETWORK -e OTA_E_LENGTH "$T/err" || die "not a transfer error: $(cat "$T/err")"
have=$(size_of "$part")
[ "$have" -gt 0 ] && [ "$have" -lt "$size" ] || die "part file has $have of $size bytes"
[ ! -d "$state/bundles/1.2.0" ] || die "staged from a broken download"
[ -z "$(ls "$state/staging")" ] || die "staging left after a failed check"
start_slow 4000000
agent check || die "check after the server came back: $(cat "$T/err")"
grep -q "$(sha_of "$T/1.2.0.ota").*bytes=$have- 206 $((size - have))" "$T/slow.log" ||
    die "did not resume from byte $have: $(cat "$T/slow.log")"
same_tree 1.2.0
no_leftovers 1.2.0
stop_slow

step "a server that ignores Range: from byte 0, dropping the prefix"
publish 1.3.0 1024
part=$(part_of 1.3.0)
head -c 300000 "$T/1.3.0.ota" >"$part"
(cd "$R/public" && exec python3 -u -m http.server --bind 127.0.0.1 0) >"$T/py.out" 2>"$T/py.log" &
py_pid=$!
n=0
while ! grep -q "port" "$T/py.out" 2>/dev/null; do
    n=$((n + 1)); [ $n -lt 200 ] || die "python server did not start"; sleep 0.05
done
config "http://127.0.0.1:$(sed -n 's/.* port \([0-9]*\).*/\1/p' "$T/py.out" | head -n 1)"
agent check || die "check against a server without ranges: $(cat "$T/err")"
same_tree 1.3.0
no_leftovers 1.3.0
kill "$py_pid"; wait "$py_pid" 2>/dev/null || true; py_pid=""
config "$NGINX_URL"

step "a prefix that is another valid bundle: refused by the stream's sha256, discarded"
publish 1.4.0 1024
part=$(part_of 1.4.0)
size=$(size_of "$T/1.4.0.ota")
window_variant "$T/1.4.0.ota" "$T/variant.ota"
head -c 500000 "$T/variant.ota" >"$part"
: >"$NGINX_RUN/access.log"
check_fails OTA_E_DIGEST
grep -q "resumed from 500000 bytes on disk is not the signed bundle, discarded" "$T/err" ||
    die "message: $(cat "$T/err")"
grep -q "does not match its expected sha256" "$T/err" || die "not the stream's digest: $(cat "$T/err")"
grep -q " 206 $((size - 500000)) " "$NGINX_RUN/access.log" || die "the rest was not fetched"
[ ! -e "$part" ] || die "a bad part file was kept"
[ ! -d "$state/bundles/1.4.0" ] || die "a bundle that is not the signed one was staged"
[ -z "$(ls "$state/staging")" ] || die "staging left after a refused stream"
: >"$NGINX_RUN/access.log"
agent check || die "check after the discarded download: $(cat "$T/err")"
grep -q "$(sha_of "$T/1.4.0.ota").* 200 $size " "$NGINX_RUN/access.log" ||
    die "not downloaded again from byte 0: $(cat "$NGINX_RUN/access.log")"
same_tree 1.4.0
no_leftovers 1.4.0

step "a complete part file that is another valid bundle: refused without a transfer"
publish 1.5.0 1024
part=$(part_of 1.5.0)
window_variant "$T/1.5.0.ota" "$part"
: >"$NGINX_RUN/access.log"
check_fails OTA_E_DIGEST
! grep -q "\.ota " "$NGINX_RUN/access.log" || die "a complete part file was fetched again"
[ ! -e "$part" ] && [ ! -d "$state/bundles/1.5.0" ] && [ -z "$(ls "$state/staging")" ] ||
    die "a refused part file left something"
agent check || die "check after the discarded part file: $(cat "$T/err")"
same_tree 1.5.0
no_leftovers 1.5.0

step "a changed payload byte in the prefix: refused by the file's digest, discarded"
publish 1.6.0 1024
part=$(part_of 1.6.0)
head -c 800000 "$T/1.6.0.ota" >"$part"
printf 'X' | dd of="$part" bs=1 seek=600000 conv=notrunc 2>/dev/null
check_fails OTA_E_DIGEST
grep -q "does not match its sha256" "$T/err" || die "not the file's digest: $(cat "$T/err")"
[ ! -e "$part" ] && [ ! -d "$state/bundles/1.6.0" ] && [ -z "$(ls "$state/staging")" ] ||
    die "a refused part file left something"
agent check || die "check after the discarded part file: $(cat "$T/err")"
same_tree 1.6.0

step "a server sending other bytes than the signed ones: refused, nothing kept"
publish 1.7.0 512
served=$(find "$R/public/targets" -name "$(sha_of "$T/1.7.0.ota").*")
[ -f "$served" ] || die "cannot find the served bundle"
window_variant "$T/1.7.0.ota" "$served"
check_fails OTA_E_DIGEST
grep -q "staging 1.7.0: bundle does not match its expected sha256" "$T/err" ||
    die "message: $(cat "$T/err")"
[ ! -e "$(part_of 1.7.0)" ] && [ ! -d "$state/bundles/1.7.0" ] && [ -z "$(ls "$state/staging")" ] ||
    die "a refused download left something"
cp "$T/1.7.0.ota" "$served"
agent check || die "check with the right bytes: $(cat "$T/err")"
same_tree 1.7.0

step "memory stays bounded: a 48 MiB bundle staged under 32 MiB"
publish 1.8.0 49152
if nm -D "$AGENT" 2>/dev/null | grep -q __asan_init || nm "$AGENT" 2>/dev/null | grep -q __asan_init; then
    echo "   (memory bound not measured: sanitizer build)"
    agent check || die "check 1.8.0: $(cat "$T/err")"
else
    [ -x /usr/bin/time ] || die "/usr/bin/time is needed to measure memory"
    /usr/bin/time -f '%M' -o "$T/rss" "$AGENT" --config "$T/agent.json" check >"$T/out" \
        2>"$T/err" || die "check 1.8.0: $(cat "$T/err")"
    kib=$(tail -n 1 "$T/rss")
    echo "   peak RSS $kib KiB"
    [ "$kib" -lt 32768 ] || die "peak RSS $kib KiB staging a 48 MiB bundle"
fi
same_tree 1.8.0
no_leftovers 1.8.0
echo "agent_stream: ok"
