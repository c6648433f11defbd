#!/bin/sh
# I/O fault injection: the real ota-agent runs under strace, which fails its N-th call of one
# system call with ENOSPC, EIO or EACCES, for every N the operation makes, along four paths:
#
#   install   `ota-agent install FILE`: a sideload bundle verified, staged and activated
#   check     `ota-agent check`: TUF metadata update, download and staging of a new release
#   activate  `ota-agent activate`: the switch to the staged release
#   rollback  `ota-agent rollback`: the switch back to the previous release
#
# System calls: write, pwrite64, fsync, fdatasync, syncfs, rename, renameat, renameat2, mkdir,
# mkdirat, openat, symlinkat (and unlink, unlinkat in the full form). Each path is counted
# first in an undisturbed run (strace -f, per call and per thread, as strace counts when it
# injects); the opens of the dynamic loader before main() are not injected.
#
# After each injected failure:
#  - the command exits 1 with a message that says what failed and the error's text
#    ("No space left on device", "Input/output error", "Permission denied");
#  - it cleaned up after itself: no staging directory and no *.ota-tmp file is left;
#  - recovery (`ota-agent gc`) finds the active release untouched;
#  - `ota-agent startup` ends on one complete, verified release with every invariant of the
#    crash torture (tests/torture/lib.sh, tt_check) holding.
# A fault the command absorbs (exit 0) is accepted only where a failure changes nothing that
# matters (absorb_reason below: output to stdout/stderr; files outside the state such as the
# locale or the random device; SQLite's own handling: a checkpoint at close, a directory fsync,
# a retried open, a best-effort record; trusted metadata read again from the repository; a
# removal that gc redoes), and the command's result must then be the one of an undisturbed
# run. The figures are printed: faults injected, failed, absorbed by reason, full disks met
# while downloading and while staging, one message per path, call and errno.
#
#   FAULT_STRIDE=k only every k-th call (default 1: all)
#   FAULT_FULL=1   every errno for every call (make torture); default: one errno per call,
#                  rotating over the paths so each errno meets each call on some path
set -eu
: "${OTA_BIN:?}" "${OTA_TOP:?}"
FULL=${FAULT_FULL:-0}
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
    TMPDIR=/dev/shm # the harness copies the state directory before every run
    export TMPDIR
fi
. "$OTA_TOP/tests/lib/assert.sh"
. "$OTA_TOP/tests/torture/lib.sh"
t0=$(date +%s)

command -v strace >/dev/null || die "strace is needed (tools/deps.sh install)"
strace -f -o /dev/null true 2>"$T/strace.err" ||
    die "strace cannot trace here (is ptrace allowed?): $(cat "$T/strace.err")"

# LeakSanitizer cannot stop the world under ptrace: no leak check in the traced runs of a
# sanitizer build (the runs that are not traced keep it).
NOLEAK="ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"

tt_setup
# Recovery runs offline: a startup must not stage or activate what the repository offers.
sed 's|"repository_url": "[^"]*"|"repository_url": "http://127.0.0.1:9"|' "$T/agent.json" \
    >"$T/offline.json"
OFF() { "$OTA_BIN/ota-agent" --config "$T/offline.json" "$@"; }

# The device: 1.2.0 active and confirmed, 1.1.0 previous, outbox drained.
tt_publish
A check >"$T/out" 2>&1 && A activate >>"$T/out" 2>&1 && A confirm >>"$T/out" 2>&1 &&
    A sync >>"$T/out" 2>&1 || die "preparing the device: $(cat "$T/out")"
BASE=$(tt_active)
PREV=$(dbq "SELECT value FROM meta WHERE key = 'previous'")

save() {
    rm -rf "$T/tpl-$1"
    mkdir -p "$T/tpl-$1"
    cp -a "$T/s" "$T"/app.db* "$T/tpl-$1/"
}
restore() {
    rm -rf "$T/s" "$T"/app.db*
    cp -a "$T/tpl-$1/." "$T/"
}
save base
tt_sideload
SIDE=$TT_FILE
SIDE_V=$TT_V
tt_publish
NEW_V=$TT_V
A check >"$T/out" 2>&1 || die "check: $(cat "$T/out")"
save staged
restore base

errtext() {
    case $1 in
    ENOSPC) echo "No space left on device" ;;
    EIO) echo "Input/output error" ;;
    EACCES) echo "Permission denied" ;;
    esac
}

SYSCALLS="write pwrite64 fsync fdatasync syncfs rename renameat renameat2 mkdir mkdirat openat"
SYSCALLS="$SYSCALLS symlinkat"
ERRNOS="ENOSPC EIO EACCES"
[ "$FULL" = 1 ] && SYSCALLS="$SYSCALLS unlink unlinkat"

# path -> template, arguments, and the outcome of an undisturbed run
path_setup() {
    case $1 in
    install) TPL=base ARGS="install $SIDE" WANT_ACTIVE=$SIDE_V ;;
    check) TPL=base ARGS=check WANT_ACTIVE=$BASE ;;
    activate) TPL=staged ARGS=activate WANT_ACTIVE=$NEW_V ;;
    rollback) TPL=base ARGS=rollback WANT_ACTIVE=$PREV ;;
    esac
}

# The outcome of an undisturbed run (also for a fault the command absorbed).
want_outcome() {
    a=$(tt_active)
    [ "$a" = "$WANT_ACTIVE" ] || return 1
    if [ "$1" = check ]; then
        [ "$(dbq "SELECT state FROM releases WHERE version = '$NEW_V'")" = staged ] || return 1
    fi
    return 0
}

# Why a fault the command absorbed (exit 0) may be absorbed; empty when it may not. The
# command's result is checked against an undisturbed run's in every case.
absorb_reason() { # call (as strace -y prints it)
    case "$1" in
    'write(1<'* | 'write(2<'*) echo "output to stdout/stderr" ;;
    *"$T/s/state.db"* | *"$T/app.db"*)
        echo "SQLite: checkpoint at close, retried open, or a best-effort record" ;;
    *"\"$T/s\", O_RDONLY|O_CLOEXEC)"* | 'fdatasync('*"<$T/s>)"*)
        echo "SQLite: fsync of the directory (failure ignored by SQLite)" ;;
    *"\"$T/s/metadata/"*'.json", O_RDONLY'*)
        echo "trusted metadata unreadable: fetched again from the repository" ;;
    'unlink('* | 'unlinkat('*)
        echo "removal of a file recovery or gc removes later (the invariants say it did)" ;;
    *"$T/"*) ;;
    *) echo "file outside the state: locale, time zone, random device, TLS configuration" ;;
    esac
}

faults=0 unreached=0 absorbed=0 sqlite_reopen=0 dl_full=0 stage_full=0 part_kept=0 path_i=0
: >"$T/messages"
: >"$T/absorbed"
printf '%-9s %7s %7s %9s\n' path faults failed absorbed
for path in install check activate rollback; do
    path_i=$((path_i + 1))
    path_setup "$path"
    restore "$TPL"
    # Count: each traced call once per line "PID name(...".
    env "$NOLEAK" strace -f -qq --seccomp-bpf -y -o "$T/dry.log" \
        -e trace="$(echo $SYSCALLS | tr ' ' ',')" \
        "$OTA_BIN/ota-agent" --config "$T/agent.json" $ARGS >"$T/out" 2>&1 ||
        die "$path: undisturbed run failed: $(cat "$T/out")"
    want_outcome "$path" || die "$path: undisturbed run did not end as expected"
    # The first open of the agent's own (its configuration): the loader's opens come before.
    first_open=$(awk '$2 ~ /^openat\(/ { n++ } $0 ~ /agent\.json/ { print n; exit }' "$T/dry.log")
    [ -n "$first_open" ] || die "$path: no open of the configuration in the trace"
    pf=0 pa=0 sys_i=0
    for sys in $SYSCALLS; do
        sys_i=$((sys_i + 1))
        max=$(awk -v s="$sys" 'index($2, s "(") == 1 { c[$1]++ }
            END { m = 0; for (p in c) if (c[p] > m) m = c[p]; print m }' "$T/dry.log")
        [ "$max" -gt 0 ] || continue
        from=1
        [ "$sys" = openat ] && from=$first_open
        if [ "$FULL" = 1 ]; then
            errs=$ERRNOS
        else
            errs=$(echo $ERRNOS | awk -v k=$(((path_i + sys_i) % 3 + 1)) '{ print $k }')
        fi
        for err in $errs; do
            # FAULT_STRIDE=k injects every k-th call only (the sanitizer pass in CI, which
            # is 3x slower; the plain pass and make torture inject every call).
            n=$((from + (path_i + sys_i) % ${FAULT_STRIDE:-1}))
            while [ "$n" -le "$max" ]; do
                restore "$TPL"
                set +e
                env "$NOLEAK" strace -f -qq --seccomp-bpf -y -o "$T/inj.log" -e trace="$sys" \
                    -e inject="$sys:error=$err:when=$n" \
                    "$OTA_BIN/ota-agent" --config "$T/agent.json" $ARGS >"$T/out" 2>"$T/err"
                st=$?
                set -e
                where="$path: $sys #$n $err"
                n=$((n + ${FAULT_STRIDE:-1}))
                hit=$(grep -m 1 'INJECTED' "$T/inj.log" || true)
                if [ -z "$hit" ]; then
                    # This run made fewer such calls than the counted one (timing, threads).
                    unreached=$((unreached + 1))
                    continue
                fi
                faults=$((faults + 1))
                pf=$((pf + 1))
                call=$(echo "$hit" | sed 's/^[0-9]* *//' | cut -c1-200)
                if [ "$st" -ne 0 ]; then
                    [ "$st" -eq 1 ] || die "$where: exit status $st: $(cat "$T/err")"
                    msg=$(grep "^ota-agent: " "$T/err" | tail -n 1)
                    [ -n "$msg" ] || die "$where: failed without a message ($call): $(cat "$T/err")"
                    case "$msg" in
                    *"$(errtext "$err")"*) ;;
                    *)
                        # SQLite retries a failed read-write open of its WAL, shared-memory or
                        # journal file read-only and keeps the errno of that retry: the message
                        # then names the database and what SQLite saw.
                        case "$sys $call" in
                        'openat '*'.db-wal"'* | 'openat '*'.db-shm"'* | 'openat '*'.db-journal"'*)
                            case "$msg" in
                            *"state database"* | *"outbox database"*)
                                sqlite_reopen=$((sqlite_reopen + 1)) ;;
                            *) die "$where: the message names no database: $msg ($call)" ;;
                            esac
                            ;;
                        *) die "$where: the message does not say '$(errtext "$err")':" \
                            "$msg ($call)" ;;
                        esac
                        ;;
                    esac
                    echo "$path $sys $err: $msg" >>"$T/messages"
                    # It cleaned up after itself, before any recovery.
                    left=$(find "$T/s" -name '*.ota-tmp' | head -n 3)
                    [ -z "$left" ] || die "$where: temp files left: $left ($call)"
                    left=$(ls -A "$T/s/staging")
                    [ -z "$left" ] || die "$where: staging left: $left ($call)"
                    if [ "$sys $err" = "write ENOSPC" ]; then
                        case "$call" in
                        *"<$T/s/downloads/"*)
                            dl_full=$((dl_full + 1))
                            if ls "$T/s/downloads/"*.part >/dev/null 2>&1; then
                                part_kept=$((part_kept + 1))
                            fi
                            ;;
                        *"<$T/s/staging/"*) stage_full=$((stage_full + 1)) ;;
                        esac
                    fi
                else
                    why=$(absorb_reason "$call")
                    [ -n "$why" ] || die "$where: the command succeeded over a failed call ($call)"
                    absorbed=$((absorbed + 1))
                    pa=$((pa + 1))
                    echo "$why" >>"$T/absorbed"
                fi
                OFF gc >"$T/out" 2>&1 || die "$where: recovery failed: $(cat "$T/out") ($call)"
                if [ "$st" -ne 0 ]; then
                    a=$(tt_active)
                    [ "$a" = "$BASE" ] ||
                        die "$where: failed, yet the active release is now '$a' ($call):" \
                            "$(cat "$T/err")"
                else
                    want_outcome "$path" ||
                        die "$where: exit 0, but not the result of an undisturbed run ($call)"
                fi
                OFF startup >"$T/out" 2>&1 || die "$where: startup failed: $(cat "$T/out")"
                tt_check || die "$where: invariants broken after the fault ($call): $(cat "$T/err")"
            done
        done
    done
    printf '%-9s %7d %7d %9d\n' "$path" "$pf" $((pf - pa)) "$pa"
done
# A full disk while downloading and while staging was met (write ENOSPC on the check path).
if [ "$FULL" = 1 ] || echo $ERRNOS | awk -v k=$(((2 + 1) % 3 + 1)) '{ exit $k != "ENOSPC" }'; then
    [ "$dl_full" -gt 0 ] && [ "$stage_full" -gt 0 ] ||
        die "no full disk during download ($dl_full) or staging ($stage_full)"
fi
echo "faults injected: $faults ($absorbed absorbed by the command with its result intact," \
    "$unreached counted calls not reached)"
echo "full disk (ENOSPC on write): $dl_full during download ($part_kept kept the partial" \
    "download for a resumed check), $stage_full during staging: active release untouched," \
    "staging and temp files removed by the command itself"
echo "SQLite open retried read-only and reported its retry's errno: $sqlite_reopen"
echo "absorbed, by reason:"
sort "$T/absorbed" | uniq -c | sort -rn
echo "messages (one per path, call and errno):"
awk -F': ' '!seen[$1]++ { print "  " $0 }' "$T/messages" | sed "s|$T|\$T|g"
echo "time: $(($(date +%s) - t0)) s"
