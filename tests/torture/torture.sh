#!/bin/sh
# Crash torture: the device's operations are killed with SIGKILL at random moments, over and
# over, and after each kill two `ota-agent startup`s must leave the device on one complete,
# verified release with nothing lost (tests/torture/lib.sh, tt_check, lists the invariants).
#
# Each round picks an operation (check = download and stage, stage = staging of a bundle
# already downloaded, activate, confirm, rollback, sync, gc, install FILE, startup), prepares
# what it needs (a new release published with ota-publish, a staged release, pending outbox
# changes, a sideload bundle), runs it and kills it and every process it forked
# (tools/ota-torture) after a delay drawn uniformly over the operation's duration, measured
# once per operation with an undisturbed run. A run that ends before its kill is counted
# apart; the test goes on until TORTURE_KILLS kills have landed.
#
#   TORTURE_KILLS   kills to land (default 2000; tests/integration/torture_short.sh: 60)
#   SEED            seed of the operation mix and the delays (default 1)
#   TORTURE_TMPDIR  where the device lives (default $TMPDIR or /tmp; on a memory file system
#                   fsync is free, and kills land in the agent's own work rather than in the
#                   disk's flushes)
#   TORTURE_MAX_S   fail if the whole run takes longer (default: no bound)
set -eu
: "${OTA_BIN:?}" "${OTA_TOP:?}"
TMPDIR=${TORTURE_TMPDIR:-${TMPDIR:-/tmp}}
export TMPDIR
. "$OTA_TOP/tests/lib/assert.sh"
. "$OTA_TOP/tests/torture/lib.sh"

KILLS=${TORTURE_KILLS:-2000}
SEED=${SEED:-1}
MAX_S=${TORTURE_MAX_S:-0}
OPS="check stage activate confirm rollback sync gc install startup"
NOPS=9
t0=$(date +%s)

tt_setup

# Random numbers in [0, 1) from the seed: one stream for the whole run.
awk -v seed="$SEED" -v n=$((KILLS * 12 + 1000)) \
    'BEGIN { srand(seed); for (i = 0; i < n; i++) printf "%.6f\n", rand() }' >"$T/rand"
exec 3<"$T/rand"
rnd() { read -r R <&3 || die "random numbers ran out"; }

num() { v=${1#1.}; echo "${v%.0}"; } # 1.N.0 -> N

# A staged release newer than the active one, made by an undisturbed check if needed.
ensure_staged() {
    act=$(num "$(tt_active)")
    st=$(dbq "SELECT version FROM releases WHERE state = 'staged' AND present = 1" |
        while read -r x; do [ "$(num "$x")" -gt "$act" ] && echo "$x"; done | head -n 1)
    [ -n "$st" ] && return 0
    tt_publish
    A check >"$T/prep.out" 2>&1 || die "prep: check: $(cat "$T/prep.out")"
    dbq "SELECT count(*) FROM releases WHERE version = '$TT_V' AND state = 'staged'" |
        grep -qx 1 || die "prep: check did not stage $TT_V: $(cat "$T/prep.out")"
}

# Switch to a newer release, undisturbed (the gate syncs first when it must).
prep_switch() {
    ensure_staged
    A activate >"$T/prep.out" 2>&1 || die "prep: activate: $(cat "$T/prep.out")"
}

# Sets ARGS, the command line of the operation, after preparing what it needs.
prepare() {
    case $1 in
    check)
        tt_publish
        ARGS=check
        ;;
    stage)
        tt_publish
        cp "$TT_TARGET" "$T/s/downloads/$TT_SHA.part"
        ARGS=check
        ;;
    activate)
        ensure_staged
        ARGS=activate
        ;;
    confirm)
        [ "$(dbq "SELECT state FROM releases WHERE version = '$(tt_active)'")" = trial ] ||
            prep_switch
        ARGS=confirm
        ;;
    rollback)
        [ -n "$(dbq "SELECT value FROM meta WHERE key = 'previous'")" ] || prep_switch
        ARGS=rollback
        ;;
    sync)
        tt_app_bulk 40
        ARGS=sync
        ;;
    gc)
        prep_switch
        ARGS=gc
        ;;
    install)
        tt_sideload
        ARGS="install $TT_FILE"
        ;;
    startup)
        rnd
        if awk -v r="$R" 'BEGIN { exit !(r < 0.34) }'; then
            tt_publish
        elif awk -v r="$R" 'BEGIN { exit !(r < 0.67) }'; then
            ensure_staged
        fi
        ARGS=startup
        ;;
    esac
}

# run_op KILL_US: the operation in $ARGS under tools/ota-torture, killed after KILL_US
# microseconds (-1: never); sets RES ("killed US", "exited STATUS US").
run_op() {
    if [ "$1" -ge 0 ]; then
        RES=$("$OTA_BIN/ota-torture" run --kill-after-us "$1" --stdout "$T/op.out" \
            --stderr "$T/op.err" -- "$OTA_BIN/ota-agent" --config "$T/agent.json" $ARGS) ||
            die "ota-torture failed"
    else
        RES=$("$OTA_BIN/ota-torture" run --stdout "$T/op.out" --stderr "$T/op.err" \
            -- "$OTA_BIN/ota-agent" --config "$T/agent.json" $ARGS) || die "ota-torture failed"
    fi
}

for op in $OPS; do
    eval "kills_$op=0 done_$op=0 dur_$op="
done
kills=0 rounds=0 recovered=0
while [ "$kills" -lt "$KILLS" ]; do
    rounds=$((rounds + 1))
    [ "$rounds" -le $((KILLS * 3 + 50)) ] ||
        die "$rounds rounds for $kills kills: most operations end before their kill"
    rnd
    op=$(echo "$OPS" | awk -v r="$R" -v n=$NOPS '{ print $(int(r * n) + 1) }')
    prepare "$op"
    eval "dur=\$dur_$op"
    if [ -z "$dur" ]; then
        # First time: measure the undisturbed operation.
        run_op -1
        set -- $RES
        eval "dur_$op=$3"
        what="measured ${3}us (exit $2)"
    else
        rnd
        delay=$(awk -v r="$R" -v d="$dur" 'BEGIN { printf "%d", r * d }')
        run_op "$delay"
        set -- $RES
        case $1 in
        killed)
            kills=$((kills + 1))
            eval "kills_$op=\$((kills_$op + 1))"
            what="killed after ${delay}us"
            ;;
        exited)
            eval "done_$op=\$((done_$op + 1))"
            what="ended (exit $2) before its kill at ${delay}us"
            ;;
        *) die "round $rounds: $op: $RES" ;;
        esac
    fi
    for n in 1 2; do
        A startup >"$T/out" 2>"$T/err" ||
            die "round $rounds ($op, $what): startup $n failed: $(cat "$T/err")"
        if grep -q 'check failed' "$T/err"; then
            die "round $rounds ($op, $what): startup $n: $(cat "$T/err")"
        fi
        grep -q 'recovered from an interrupted operation' "$T/err" && recovered=$((recovered + 1))
    done
    tt_check || {
        echo "round $rounds: $op ($ARGS), $what; its stderr:" >&2
        tail -n 5 "$T/op.err" >&2
        die "invariants broken after round $rounds (seed $SEED)"
    }
    [ "$op" != install ] || rm -f "$TT_FILE"
    tt_app_change 1
    if [ $((rounds % 100)) -eq 0 ]; then
        echo "round $rounds: $kills kills, $(($(date +%s) - t0)) s" >&2
    fi
    if [ "$MAX_S" -gt 0 ] && [ $(($(date +%s) - t0)) -gt "$MAX_S" ]; then
        die "over ${MAX_S} s after $kills kills"
    fi
done
pending=$(sqlite3 "$T/app.db" "SELECT count(*) FROM ota_outbox WHERE state = 'pending'")
# In the end every change reaches the server, each exactly once.
A sync >"$T/out" 2>&1 || die "final sync: $(cat "$T/out")"
tt_check || die "invariants broken after the final sync"
tt_check_server
[ "$TT_ACKED" -eq "$TT_CHG" ] && [ "$TT_STORED" -eq "$TT_CHG" ] ||
    die "after the final sync $TT_ACKED of $TT_CHG changes are acknowledged, $TT_STORED stored"

echo "torture: seed $SEED, $rounds rounds in $(($(date +%s) - t0)) s"
echo "kills survived: $kills"
printf '%-10s %6s %16s %12s\n' operation kills ended-before-kill duration-ms
for op in $OPS; do
    eval "k=\$kills_$op d=\$done_$op u=\$dur_$op"
    printf '%-10s %6d %16d %12s\n' "$op" "$k" "$d" \
        "$(awk -v u="${u:-0}" 'BEGIN { printf "%.1f", u / 1000 }')"
done
echo "startups that repaired an interrupted operation: $recovered"
echo "releases published: $TT_PUBLISHED, sideloaded: $TT_SIDELOADED"
echo "outbox: $TT_CHG changes written, none lost; $pending were pending at the last kill;" \
    "after a final sync all are on the server exactly once ($TT_DUPS resends answered" \
    "without applying twice)"
