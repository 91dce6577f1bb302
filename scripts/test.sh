#!/usr/bin/env bash
# The one test command (README, CI): installs what the tests need, starts the local
# services, checks formatting and lints, then runs every test against the real services.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

apt_install redis-server redis-tools prometheus prometheus-alertmanager ruby-sidekiq ruby-redis-namespace openssl dpkg-dev
# tests/host_collector.rs: unshare/nsenter give its hung FUSE mount a private mount namespace
# (the FUSE server itself is tests/helpers/hang_statfs.py, standard library only, on /dev/fuse).
apt_install util-linux
command -v npm >/dev/null || apt_install nodejs npm
python3 -c "import rq, celery, packaging" 2>/dev/null || python3 -m pip install -q -r tests/producers/requirements.txt
# The real queue libraries the tests produce and work jobs with, pinned by package-lock.json
# (`npm ci` trips over npm 11's handling of optional platform packages; `install` keeps the lock).
(cd tests/producers && { [ -d node_modules/bullmq ] && [ -d node_modules/bull ] || npm install --no-audit --no-fund; })
start_redis
start_postgres
install_postgres_versions
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
# tests/container.rs builds and runs the image on a Debian base made with debootstrap (no registry
# here; cached under /var/cache/redline-test), and it and tests/deb_package.rs ship the release
# binary: build it once here rather than inside a test.
bash scripts/container-base.sh
cargo build --release --locked
cargo nextest run --locked --no-fail-fast
