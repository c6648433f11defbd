#!/bin/sh
# Build and test dependencies of ota on Debian 12.
#   tools/deps.sh check    exit 0 when everything is present, else print what is missing
#   tools/deps.sh install  install what is missing with apt-get (as root), or print the command
set -eu

PKGS="build-essential pkg-config libarchive-dev libsodium-dev libcurl4-openssl-dev libzstd-dev
libsqlite3-dev libjansson-dev libssl-dev libcmocka-dev libmicrohttpd-dev nginx-light zstd
libarchive-tools sqlite3 nodejs npm faketime strace time curl ca-certificates
clang libclang-rt-14-dev"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || {
        # nodejs/npm may come from elsewhere than Debian; the commands are what matters.
        case "$p" in
        nodejs) command -v node >/dev/null 2>&1 && continue ;;
        npm) command -v npm >/dev/null 2>&1 && continue ;;
        esac
        missing="$missing $p"
    }
done

case "${1:-check}" in
check)
    if [ -n "$missing" ]; then
        echo "missing packages:$missing" >&2
        echo "install them with: make deps   (or: sudo apt-get install -y$missing)" >&2
        exit 1
    fi
    ;;
install)
    [ -z "$missing" ] && exit 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing:$missing"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    else
        echo "missing packages:$missing" >&2
        echo "run: sudo apt-get install -y$missing" >&2
        exit 1
    fi
    ;;
*)
    echo "usage: tools/deps.sh check|install" >&2
    exit 2
    ;;
esac
