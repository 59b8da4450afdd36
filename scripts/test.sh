#!/usr/bin/env bash
# Runs the whole test suite.
#
# The tests start their own private redis-server processes on free loopback
# ports (see tests/support/mod.rs), so only the redis-server binary is needed.
# Set REDIS_URL to run the tests against an existing server instead.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '\n==> %s\n' "$*"; }

install_redis() {
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo="sudo"
        else
            echo "error: redis-server is missing and we are not root and sudo is unavailable." >&2
            echo "       Install redis-server (e.g. apt-get install -y redis-server) and retry." >&2
            exit 1
        fi
    fi
    log "installing redis-server with apt-get"
    $sudo apt-get update
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server
}

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    log "redis-server/redis-cli not found on PATH"
    install_redis
    command -v redis-server >/dev/null 2>&1 || { echo "error: redis-server still not on PATH after install" >&2; exit 1; }
fi
log "using $(redis-server --version)"

# tests/tls.rs makes its CA and server certificates with the openssl command.
if ! command -v openssl >/dev/null 2>&1; then
    log "openssl not found on PATH; installing it with apt-get"
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y openssl
fi

# --workspace: the crates, the cache-memoize command and the fastest-config
# tool (its unit tests need no Redis). --all-features: the optional codecs
# (all-codecs), their tests, the codecs bench (run once as a smoke test) and
# the TLS tests (feature `tls`). tests/cluster.rs starts a local 3-master
# Redis Cluster with redis-server and redis-cli.
log "cargo test --workspace --all-targets --all-features"
cargo test --workspace --all-targets --all-features

log "cargo test --workspace --doc --all-features"
cargo test --workspace --doc --all-features

log "all tests passed"
