#!/usr/bin/env bash
# The one test command (README, CI): installs what the tests need, starts the local
# services, checks formatting and lints, then runs every test against the real services.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

apt_install redis-server redis-tools prometheus prometheus-alertmanager
start_redis
start_postgres
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo nextest run --locked --no-fail-fast
