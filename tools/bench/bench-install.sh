#!/bin/sh
# Install benchmark: what verification costs. Installs, from nginx on 127.0.0.1, the v1 corpus
# (2,001 files, ~200 MiB) and the 1 GiB image, each as a release of its own app, with
#
#   ota    `ota-agent startup` on a fresh state directory: TUF refresh, choice of the release,
#          download, verification (signed manifest, SHA-256 of every file and of the whole
#          bundle), extraction into staging/, syncfs, rename into bundles/, activation
#   peer   curl -s URL | zstd -dc | tar -x -C DIR; sync        (no verification at all)
#
# alternating ota peer ota peer ... so that drifts in machine speed hit both alike, and prints
# medians of the elapsed time, of the peak memory (/usr/bin/time's maximum resident set size:
# for the pipe, that of its largest process) and of the CPU time (user + system, all processes
# and threads), and the ratios ota/peer. Before every run
# the outputs of both tools are deleted, then `sync` (and, as root, the page cache is
# dropped), then BENCH_SETTLE seconds pass: extracting right after deleting a large tree is
# several times slower on these machines (ext4 with online discard).
#
# Then a check that finds nothing new: its time, the bytes it received (ota_fetch_bytes_total,
# printed by `check --json`) and what nginx sent for it (access log).
#
# The share of CPU time the hypervisor gave to others ("steal", /proc/stat) while the runs went
# on is printed too: on a shared host it, more than anything here, moves the figures.
#
# Environment: BUILD (build directory, default ./build), BENCH_DIR (corpus, default
# /var/tmp/ota-bench; generated once if absent, big.img included), BENCH_ROUNDS (default 5),
# BENCH_SETTLE (seconds, default 5), BENCH_ONLY (v1 or img: one of the two only), BENCH_VERBOSE
# (non-empty: print every run).
# Builds nothing; prints figures and never fails on speed.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
: "${BUILD:=$top/build}"
: "${BENCH_DIR:=/var/tmp/ota-bench}"
: "${BENCH_ROUNDS:=5}"
: "${BENCH_SETTLE:=5}"
: "${BENCH_ONLY:=}"
: "${BENCH_VERBOSE:=}"
agent=$BUILD/bin/ota-agent
pub=$BUILD/bin/ota-publish

for b in "$agent" "$pub"; do
    [ -x "$b" ] || { echo "bench-install: $b is missing; run make first" >&2; exit 1; }
done
for t in curl zstd tar python3; do
    command -v $t >/dev/null 2>&1 || { echo "bench-install: '$t' is not installed" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "bench-install: /usr/bin/time is not installed" >&2; exit 1; }

gen=/work/shared/bench/gen_corpus.py
[ -f "$gen" ] || gen=$top/../shared/bench/gen_corpus.py
if [ ! -d "$BENCH_DIR/v1/app" ]; then
    [ -f "$gen" ] || { echo "bench-install: cannot find gen_corpus.py" >&2; exit 1; }
    echo "generating the corpus in $BENCH_DIR (once)"
    python3 "$gen" "$BENCH_DIR" >/dev/null
elif [ ! -f "$BENCH_DIR/big.img" ]; then
    # The rest of the corpus is there (another benchmark made it without the image): make the
    # image alone, with the generator's own function, so that v1 is not rewritten under a
    # benchmark that may be reading it.
    [ -f "$gen" ] || { echo "bench-install: cannot find gen_corpus.py" >&2; exit 1; }
    echo "generating $BENCH_DIR/big.img (once)"
    python3 - "$gen" "$BENCH_DIR/big.img" <<'EOF'
import importlib.util, os, sys
gen, out = sys.argv[1], sys.argv[2]
sys.argv = [gen]
spec = importlib.util.spec_from_file_location("gen_corpus", gen)
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
m.gen_big(out + ".tmp")
os.rename(out + ".tmp", out)
EOF
fi

. "$top/tests/lib/nginx.sh"
work=$(mktemp -d "$BENCH_DIR/install.XXXXXX")
cleanup() {
    nginx_stop || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# ---- the repository: two apps, one release each --------------------------------------------
export OTA_PASSPHRASE=bench
repo=$work/repo
"$pub" init "$repo" >/dev/null
mkdir "$work/img"
ln "$BENCH_DIR/big.img" "$work/img/big.img" 2>/dev/null || cp "$BENCH_DIR/big.img" "$work/img/"
packrel() { # name dir app
    "$pub" pack "$2" -o "$work/$1.ota" --repo "$repo" --app "$3" --version 1.0.0 --model m1 \
        --runtime 1.0..9.9 >/dev/null 2>"$work/err" &&
        "$pub" release "$repo" "$work/$1.ota" >/dev/null 2>>"$work/err" || {
        echo "bench-install: cannot publish $1:" >&2; cat "$work/err" >&2; exit 1; }
}
packrel v1 "$BENCH_DIR/v1/app" com.example.bench
packrel img "$work/img" com.example.image
rm -rf "$work/img"
nginx_start "$repo/public" >/dev/null

# URL of a bundle: targets/<app>/<sha256>.<app>-<version>.ota (formats/repository.md).
url_of() { # name app
    echo "$NGINX_URL/targets/$2/$(sha256sum "$work/$1.ota" | cut -c1-64).$2-1.0.0.ota"
}

config() { # file app state
    cat >"$1" <<EOF
{"repository_url": "$NGINX_URL", "state_dir": "$3", "app": "$2",
 "runtime_version": "1.0", "trusted_root": "$repo/public/metadata/1.root.json",
 "max_bundle_bytes": 4294967296}
EOF
}

settle() {
    rm -rf "$work/state" "$work/out"
    sync
    if [ "$(id -u)" = 0 ]; then
        echo 3 >/proc/sys/vm/drop_caches
    fi
    sleep "$BENCH_SETTLE"
}

# One run; appends "seconds kib" to $work/<name>.<tool>.txt.
run() { # name app tool
    settle
    case $3 in
    ota)
        config "$work/agent.json" "$2" "$work/state"
        set -- "$1" "$2" "$3" "$agent" --config "$work/agent.json" startup
        ;;
    peer)
        mkdir "$work/out"
        set -- "$1" "$2" "$3" sh -c 'curl -sf "$1" | zstd -dc | tar -x -C "$2"; sync' sh \
            "$(url_of "$1" "$2")" "$work/out"
        ;;
    esac
    name=$1 tool=$3
    shift 3
    if ! /usr/bin/time -f '%e %M %U %S' -o "$work/time" "$@" >/dev/null 2>"$work/err"; then
        echo "bench-install: $tool ($name) failed:" >&2
        cat "$work/err" >&2
        exit 1
    fi
    awk '{ printf "%s %s %.2f\n", $1, $2, $3 + $4 }' "$work/time" >>"$work/$name.$tool.txt"
    [ -z "$BENCH_VERBOSE" ] || echo "  $name $tool: $(tail -n 1 "$work/$name.$tool.txt")" \
        "(seconds, KiB, cpu seconds)"
}

# The tree must be what was packed: a benchmark of a broken install would mean nothing.
verify_once() { # name app
    settle
    config "$work/agent.json" "$2" "$work/state"
    "$agent" --config "$work/agent.json" startup >/dev/null 2>"$work/err" || {
        echo "bench-install: ota ($1) failed:" >&2; cat "$work/err" >&2; exit 1; }
    case $1 in
    v1) diff -r "$BENCH_DIR/v1/app" "$work/state/current" >/dev/null ;;
    img) cmp "$BENCH_DIR/big.img" "$work/state/current/big.img" ;;
    esac || { echo "bench-install: ota installed a different tree ($1)" >&2; exit 1; }
}

median() { # file column
    sort -n -k "$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END {
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Cumulated steal ticks of all CPUs (8th value of the "cpu" line), and all ticks.
ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print $9, t }' /proc/stat; }

report() { # name label steal-percent
    ots=$(median "$work/$1.ota.txt" 1)
    otm=$(median "$work/$1.ota.txt" 2 | awk '{ printf "%.1f", $1 / 1024 }')
    otc=$(median "$work/$1.ota.txt" 3)
    pes=$(median "$work/$1.peer.txt" 1)
    pem=$(median "$work/$1.peer.txt" 2 | awk '{ printf "%.1f", $1 / 1024 }')
    pec=$(median "$work/$1.peer.txt" 3)
    echo "install $2: $BENCH_ROUNDS rounds alternating, medians; steal $3%"
    printf '  %-44s %8s %10s %8s\n' tool seconds "peak MiB" "cpu s"
    printf '  %-44s %8s %10s %8s\n' "ota-agent startup (fresh state)" "$ots" "$otm" "$otc"
    printf '  %-44s %8s %10s %8s\n' "curl -s | zstd -dc | tar -x; sync" "$pes" "$pem" "$pec"
    awk -v a="$ots" -v b="$pes" -v c="$otm" -v d="$pem" -v e="$otc" -v f="$pec" 'BEGIN {
        printf "  ota / peer: time %.2f, peak memory %.2f, cpu %.2f\n", (b > 0 ? a / b : 0),
            (d > 0 ? c / d : 0), (f > 0 ? e / f : 0) }'
}

bench() { # name app label
    verify_once "$1" "$2"
    t0=$(ticks)
    i=0
    while [ $i -lt "$BENCH_ROUNDS" ]; do
        run "$1" "$2" ota
        run "$1" "$2" peer
        i=$((i + 1))
    done
    report "$1" "$3" "$(echo "$t0 $(ticks)" | awk '{
        printf "%.0f", ($4 > $2 ? 100 * ($3 - $1) / ($4 - $2) : 0) }')"
}

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)$([ "$(id -u)" = 0 ] ||
    echo "; not root: page cache not dropped between runs")"
v1_bytes=$(wc -c <"$work/v1.ota")
img_bytes=$(wc -c <"$work/img.ota")
[ "$BENCH_ONLY" = img ] || bench v1 com.example.bench "v1 ($(du -sm --apparent-size \
    "$BENCH_DIR/v1/app" | cut -f1) MiB in $(find "$BENCH_DIR/v1/app" -type f | wc -l) files, \
bundle $v1_bytes bytes)"
[ "$BENCH_ONLY" = v1 ] || bench img com.example.image "1 GiB image (bundle $img_bytes bytes)"

# ---- a check that finds nothing new ------------------------------------------------------
settle
config "$work/agent.json" com.example.bench "$work/state"
"$agent" --config "$work/agent.json" startup >/dev/null 2>"$work/err" || {
    echo "bench-install: ota startup failed:" >&2; cat "$work/err" >&2; exit 1; }
: >"$NGINX_RUN/access.log"
/usr/bin/time -f '%e %M' -o "$work/time" "$agent" --config "$work/agent.json" check --json \
    >"$work/check.json" 2>"$work/err" || {
    echo "bench-install: check failed:" >&2; cat "$work/err" >&2; exit 1; }
grep -q '"found": false' "$work/check.json" || {
    echo "bench-install: the check found something" >&2; exit 1; }
got=$(sed -n 's/.*"bytes": \([0-9]*\).*/\1/p' "$work/check.json")
# Combined log format: ... "GET $uri HTTP/1.1" $status $body_bytes_sent ...
echo "check without news: $(cut -d' ' -f1 "$work/time") s, peak $(cut -d' ' -f2 "$work/time" |
    awk '{ printf "%.1f", $1 / 1024 }') MiB, $got bytes received (ota_fetch_bytes_total);" \
    "nginx: $(awk '{ n = split($7, p, "/"); printf "%s%s %s %s", (NR > 1 ? ", " : ""), p[n], $9,
        $10 } END { if (NR == 0) printf "nothing" }' "$NGINX_RUN/access.log")"
