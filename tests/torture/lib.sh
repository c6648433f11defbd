# A device, its repository and its sync server, for the crash torture (tests/torture/torture.sh)
# and the I/O fault injection (tests/integration/fault_inject.sh), with the checker of the
# invariants both assert after every kill or fault. POSIX sh, to be sourced after
# tests/lib/assert.sh (which gives $T, add_cleanup, die):
#
#   tt_setup              repository (ota-publish) served by nginx, ota-syncd, app outbox db,
#                         device config; the device runs its first release
#   tt_publish            pack the next version and release it on stable: $TT_V, $TT_TARGET,
#                         $TT_SHA
#   tt_sideload           pack the next version, not published: $TT_V, $TT_FILE
#   tt_app_change [N]     the app records N changes (ota-agent outbox add) under the running
#                         model
#   tt_app_bulk N         the app records N changes in one transaction (plain SQL, as
#                         formats/outbox.md shows)
#   tt_check              assert every invariant; on failure print why and return 1
#   A ARGS...             ota-agent with the device's configuration
#   dbq SQL               query the device's state database
#
# Versions are 1.N.0 with N counting up, so every new bundle is newer than anything the device
# has. Data models go m1, m2, m3, m1 ... every 4 versions; a bundle reads the model before its
# own, except every 5th one, which reads none (published --breaking when its model changed).

TT_APP=com.example.field
TT_N=0
TT_CHG=0
TT_PUB_MODEL=
TT_PUBLISHED=0
TT_SIDELOADED=0
SYNCD_PID=

A() { "$OTA_BIN/ota-agent" --config "$T/agent.json" "$@"; }
dbq() { sqlite3 "$T/s/state.db" "$1"; }

TT_SHM=
tt_rm_shm() { [ -z "$TT_SHM" ] || rm -rf "$TT_SHM"; }

tt_stop_syncd() {
    if [ -n "$SYNCD_PID" ]; then
        kill "$SYNCD_PID" 2>/dev/null && wait "$SYNCD_PID" 2>/dev/null
        SYNCD_PID=
    fi
    return 0
}

# Model of version number N, and the model it reads ("" for none).
tt_model() { echo "m$(((($1 - 1) / 4) % 3 + 1))"; }
tt_reads() {
    [ $(($1 % 5)) -eq 0 ] && return 0
    echo "m$(((($1 - 1) / 4 + 2) % 3 + 1))"
}

# tt_tree DIR: "d PATH" and "f PATH SHA256" lines for everything below DIR, sorted; any other
# kind of entry is listed with its find(1) type letter, so it never matches a manifest.
tt_tree() {
    (cd "$1" && {
        find . -mindepth 1 ! -type f -printf '%y %P\n'
        find . -type f -print0 | xargs -0 -r sha256sum |
            awk '{ p = $2; sub(/^\.\//, "", p); print "f " p " " $1 }'
    }) | LC_ALL=C sort
}

# tt_ref VERSION BUNDLE: the listing the signed manifest of BUNDLE describes (ota-publish
# inspect checks every file's digest on the way), kept as $T/ref/VERSION.
tt_ref() {
    "$PUB" inspect "$2" --json >"$T/inspect.json" 2>"$T/inspect.err" ||
        die "inspect $2: $(cat "$T/inspect.err")"
    sqlite3 :memory: "SELECT CASE json_extract(value, '\$.type')
        WHEN 'file' THEN 'f ' || json_extract(value, '\$.path') || ' ' ||
                         json_extract(value, '\$.sha256')
        ELSE 'd ' || json_extract(value, '\$.path') END
        FROM json_each(readfile('$T/inspect.json'), '\$.signed.files')" |
        LC_ALL=C sort >"$T/ref/$1"
    [ -s "$T/ref/$1" ] || die "no files in the manifest of $2"
}

# tt_pack: the next version's bundle in $T/b/$TT_V.ota (signed with the repository's targets
# key), a dozen files of random content.
tt_pack() {
    TT_N=$((TT_N + 1))
    TT_V="1.$TT_N.0"
    TT_MODEL=$(tt_model $TT_N)
    TT_READS=$(tt_reads $TT_N)
    src="$T/src/$TT_V"
    mkdir -p "$src/assets/data"
    echo "console.log('v$TT_V')" >"$src/index.js"
    echo "{\"version\":\"$TT_V\",\"model\":\"$TT_MODEL\"}" >"$src/assets/app.json"
    for i in 1 2 3 4 5 6 7 8 9 10; do
        head -c $(((TT_N * 7919 + i * 104729) % 24000 + 1000)) /dev/urandom \
            >"$src/assets/data/$i.bin"
    done
    "$PUB" pack "$src" -o "$T/b/$TT_V.ota" --repo "$TT_REPO" --app "$TT_APP" --version "$TT_V" \
        --model "$TT_MODEL" ${TT_READS:+--reads-model "$TT_READS"} --runtime 3.0..3.9 \
        --min-agent 0.1 --threads 1 >"$T/pack.out" 2>&1 || die "pack $TT_V: $(cat "$T/pack.out")"
    rm -rf "$src"
}

tt_publish() {
    tt_pack
    brk=
    if [ -n "$TT_PUB_MODEL" ] && [ "$TT_PUB_MODEL" != "$TT_MODEL" ] &&
        [ "$TT_PUB_MODEL" != "$TT_READS" ]; then
        brk=--breaking
    fi
    "$PUB" release "$TT_REPO" "$T/b/$TT_V.ota" --channel stable $brk >"$T/pub.out" 2>&1 ||
        die "release $TT_V: $(cat "$T/pub.out")"
    TT_PUB_MODEL=$TT_MODEL
    TT_SHA=$(sha256sum "$T/b/$TT_V.ota" | cut -c1-64)
    TT_TARGET="$TT_REPO/public/targets/$TT_APP/$TT_SHA.$TT_APP-$TT_V.ota"
    [ -f "$TT_TARGET" ] || die "release $TT_V: no target file $TT_TARGET"
    # The reference is the bundle as the repository serves it.
    tt_ref "$TT_V" "$TT_TARGET"
    rm -f "$T/b/$TT_V.ota"
    TT_PUBLISHED=$((TT_PUBLISHED + 1))
}

tt_sideload() {
    tt_pack
    TT_FILE="$T/b/$TT_V.ota"
    tt_ref "$TT_V" "$TT_FILE"
    TT_SIDELOADED=$((TT_SIDELOADED + 1))
}

tt_active() { dbq "SELECT value FROM meta WHERE key = 'active'"; }

tt_active_model() {
    dbq "SELECT model FROM releases WHERE version = (SELECT value FROM meta WHERE key = 'active')"
}

# The app's changes: change ids chg-N; every one is remembered in $T/expected.
tt_app_change() {
    m=$(tt_active_model)
    [ -n "$m" ] || m=m1
    i=0
    while [ "$i" -lt "${1:-1}" ]; do
        i=$((i + 1))
        TT_CHG=$((TT_CHG + 1))
        p="{\"n\":$TT_CHG,\"note\":\"torture\"}"
        A outbox add --id "chg-$TT_CHG" --model "$m" --entity site --op insert --payload "$p" \
            >/dev/null 2>"$T/add.err" || die "outbox add: $(cat "$T/add.err")"
        echo "chg-$TT_CHG $m $p" >>"$T/expected"
    done
}

tt_app_bulk() {
    m=$(tt_active_model)
    [ -n "$m" ] || m=m1
    first=$((TT_CHG + 1))
    TT_CHG=$((TT_CHG + $1))
    sqlite3 "$T/app.db" "WITH RECURSIVE c(x) AS (SELECT $first UNION ALL SELECT x + 1 FROM c
        WHERE x < $TT_CHG) INSERT INTO ota_outbox(change_id, model, entity, op, payload,
        created_at) SELECT 'chg-' || x, '$m', 'site', 'update',
        '{\"n\":' || x || ',\"note\":\"torture\"}', 1700000000 + x FROM c" ||
        die "the app could not write its outbox"
    i=$first
    while [ "$i" -le "$TT_CHG" ]; do
        echo "chg-$i $m {\"n\":$i,\"note\":\"torture\"}"
        i=$((i + 1))
    done >>"$T/expected"
}

tt_bad() {
    echo "INVARIANT BROKEN: $*" >&2
    return 1
}

# Every invariant, after recovery:
#  - `current` is bundles/<v>, the state database's active release is <v> (active, trial or
#    confirmed) and no switch is half-recorded;
#  - every tree in bundles/ is a complete release whose every file matches the digest in its
#    signed manifest, with nothing more; the database's present releases are exactly those;
#  - no *.ota-tmp anywhere, staging/ empty, no download but the one in progress;
#  - the outbox holds exactly the changes the app wrote, payloads intact, none quarantined;
#    every acknowledged change is on the sync server exactly once with the same payload, and
#    the server holds nothing the outbox does not.
tt_check() {
    s="$T/s"
    cur=$(readlink "$s/current") || { tt_bad "no 'current' link"; return 1; }
    case "$cur" in
    bundles/*/* | bundles/) tt_bad "'current' points at '$cur'"; return 1 ;;
    bundles/*) v=${cur#bundles/} ;;
    *) tt_bad "'current' points at '$cur'"; return 1 ;;
    esac
    [ -d "$s/$cur" ] || { tt_bad "'current' -> '$cur' is not a directory"; return 1; }
    row=$(dbq "SELECT coalesce((SELECT value FROM meta WHERE key = 'active'), '-') || ' ' ||
        (SELECT count(*) FROM meta WHERE key = 'activating') || ' ' ||
        coalesce((SELECT state || ':' || present FROM releases
                  WHERE version = (SELECT value FROM meta WHERE key = 'active')), '-')") ||
        { tt_bad "cannot read the state database"; return 1; }
    set -- $row
    [ "$1" = "$v" ] || { tt_bad "database says '$1' is active, 'current' runs '$v'"; return 1; }
    [ "$2" = 0 ] || { tt_bad "an activation record is left: $(dbq "SELECT value FROM meta
        WHERE key = 'activating'")"; return 1; }
    case "$3" in
    active:1 | trial:1 | confirmed:1) ;;
    *) tt_bad "active release $v is recorded as '$3'"; return 1 ;;
    esac
    dbq "SELECT version FROM releases WHERE present = 1" | LC_ALL=C sort >"$T/present"
    ls -A "$s/bundles" | LC_ALL=C sort >"$T/ondisk"
    cmp -s "$T/present" "$T/ondisk" || {
        tt_bad "database and bundles/ disagree: recorded '$(tr '\n' ' ' <"$T/present")'," \
            "on disk '$(tr '\n' ' ' <"$T/ondisk")'"
        return 1
    }
    # All trees at once, each line prefixed with its version: one pass of sha256sum.
    refs=
    while read -r b; do
        [ -f "$T/ref/$b" ] || { tt_bad "bundles/$b is no release this test made"; return 1; }
        refs="$refs $T/ref/$b"
    done <"$T/ondisk"
    if [ -n "$refs" ]; then
        awk '{ v = FILENAME; sub(/.*\//, "", v); if (FNR == 1) print "d " v
               $2 = v "/" $2; print }' $refs | LC_ALL=C sort >"$T/want-trees"
    else
        : >"$T/want-trees"
    fi
    tt_tree "$s/bundles" >"$T/trees"
    cmp -s "$T/trees" "$T/want-trees" || {
        tt_bad "bundles/ does not hold the signed releases exactly:"
        diff "$T/want-trees" "$T/trees" | head -n 10 >&2
        return 1
    }
    left=$(find "$s" -name '*.ota-tmp' | head -n 5)
    [ -z "$left" ] || { tt_bad "temp files left: $left"; return 1; }
    left=$(ls -A "$s/staging")
    [ -z "$left" ] || { tt_bad "staging leftovers: $left"; return 1; }
    # downloads/ holds at most the download in progress (gc, at the end of startup, removes
    # the others).
    keep=$(dbq "SELECT value FROM meta WHERE key = 'download'")
    left=$(ls -A "$s/downloads" | grep -vx "$keep.part" | head -n 3) || true
    [ -z "$left" ] || { tt_bad "stale downloads: $left"; return 1; }

    sqlite3 "$T/app.db" "SELECT change_id || ' ' || model || ' ' || payload FROM ota_outbox" |
        LC_ALL=C sort >"$T/have"
    LC_ALL=C sort "$T/expected" >"$T/want"
    cmp -s "$T/have" "$T/want" || {
        tt_bad "outbox rows lost, added or changed:"
        diff "$T/want" "$T/have" | head -n 10 >&2
        return 1
    }
    row=$(sqlite3 "$T/app.db" "ATTACH '$T/server.db' AS s;
        SELECT (SELECT count(*) FROM ota_outbox WHERE state = 'quarantined') || ' ' ||
        (SELECT count(*) FROM ota_outbox o WHERE o.state = 'acked' AND
            (SELECT count(*) FROM s.changes c WHERE c.id = o.change_id AND c.model = o.model
             AND c.payload = o.payload) <> 1) || ' ' ||
        (SELECT count(*) FROM s.changes c WHERE NOT EXISTS
            (SELECT 1 FROM ota_outbox o WHERE o.change_id = c.id)) || ' ' ||
        (SELECT count(*) FROM ota_outbox WHERE state = 'acked') || ' ' ||
        (SELECT count(*) FROM s.changes)") || { tt_bad "cannot read the outbox"; return 1; }
    set -- $row
    [ "$1" = 0 ] || { tt_bad "$1 changes quarantined"; return 1; }
    [ "$2" = 0 ] || {
        tt_bad "$2 acknowledged changes are not on the server exactly once"
        return 1
    }
    [ "$3" = 0 ] || { tt_bad "the server holds $3 changes the outbox does not"; return 1; }
    TT_ACKED=$4
    TT_STORED=$5
    return 0
}

# The server applied each change once: its count of applied changes is what it holds.
tt_check_server() {
    stats=$(curl -sf "http://127.0.0.1:$TT_SYNC_PORT/admin/stats") || die "no stats from ota-syncd"
    applied=$(printf '%s' "$stats" | sed -n 's/.*"applied":\([0-9]*\).*/\1/p')
    TT_DUPS=$(printf '%s' "$stats" | sed -n 's/.*"duplicates":\([0-9]*\).*/\1/p')
    stored=$(sqlite3 "$T/server.db" "SELECT count(*) FROM changes")
    [ "$applied" = "$stored" ] || die "ota-syncd applied $applied changes but holds $stored"
}

tt_setup() {
    command -v sqlite3 >/dev/null || die "sqlite3 is needed"
    mkdir -p "$T/b" "$T/src" "$T/ref"
    : >"$T/expected"
    OTA_PASSPHRASE=torture-passphrase
    export OTA_PASSPHRASE
    # The publisher's workspace on a memory file system when there is one: it fsyncs every
    # metadata file, and publishing hundreds of releases on a slow disk would dominate the run.
    # The device's state directory stays in $T.
    TT_REPO="$T/repo"
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then
        TT_SHM=$(mktemp -d /dev/shm/ota-torture.XXXXXX)
        add_cleanup tt_rm_shm
        TT_REPO="$TT_SHM/repo"
    fi
    # Online keys and the targets key unencrypted (keygen --unencrypted, through a root
    # rotation the device follows on its first check): the passphrase's argon2id would cost
    # a fifth of a second per publication, and this test publishes hundreds.
    "$PUB" init "$TT_REPO" --root-keys 1 --root-threshold 1 --unencrypted-online \
        >"$T/init.out" 2>&1 || die "init: $(cat "$T/init.out")"
    "$PUB" keygen "$TT_REPO/keys/targets-2.key" --unencrypted >>"$T/init.out" 2>&1 &&
        "$PUB" rotate "$TT_REPO" --role targets --key "$TT_REPO/keys/targets-2.key" \
            >>"$T/init.out" 2>&1 ||
        die "targets key: $(cat "$T/init.out")"

    . "$OTA_TOP/tests/lib/nginx.sh"
    add_cleanup nginx_stop
    nginx_start "$TT_REPO/public" || die "nginx did not start"

    add_cleanup tt_stop_syncd
    "$OTA_BIN/ota-syncd" --db "$T/server.db" --port 0 --port-file "$T/sync.port" \
        --fail-rate "${TT_SYNC_FAIL_RATE:-0}" >"$T/syncd.log" 2>&1 &
    SYNCD_PID=$!
    i=0
    while [ ! -s "$T/sync.port" ]; do
        i=$((i + 1))
        [ $i -lt 500 ] || die "ota-syncd did not start: $(cat "$T/syncd.log")"
        sleep 0.01
    done
    TT_SYNC_PORT=$(cat "$T/sync.port")

    cat >"$T/agent.json" <<EOF
{"repository_url": "$NGINX_URL", "state_dir": "$T/s", "app": "$TT_APP",
 "runtime_version": "3.1", "trusted_root": "$TT_REPO/public/metadata/1.root.json",
 "check_timeout_s": 20, "connect_timeout_s": 2, "low_speed_time_s": 5,
 "trial_launches": 4, "keep_releases": 2,
 "outbox_db": "$T/app.db", "sync_url": "http://127.0.0.1:$TT_SYNC_PORT/sync/{model}"}
EOF
    tt_publish
    A startup >"$T/out" 2>"$T/err" || die "first startup: $(cat "$T/err")"
    [ "$(tt_active)" = "$TT_V" ] || die "first startup did not install $TT_V"
    tt_app_change 3
    tt_check || die "invariants after the first start"
}
