#!/usr/bin/env bash
# Checks the Containerfile's default path (compile in the builder stage) on a machine that can
# pull no rust image: a stand-in builder image is made from the test base image
# (scripts/container-base.sh), Debian's gcc/libssl-dev/pkg-config and this machine's own Rust
# toolchain, then `podman build` runs the default target with it, fetching crates from crates.io.
# Not part of scripts/test.sh: a full release build inside the image takes minutes. Usage:
#   scripts/container-source-build.sh        # builds redline:source-check and runs --version
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/container-base.sh
export CONTAINERS_CONF=$PWD/tests/container/containers.conf
standin=localhost/redline-test-rust:standin
if ! podman image exists "$standin"; then
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' EXIT
  toolchain=$(rustc --print sysroot)
  mkdir -p "$ctx/rust"
  cp -a "$toolchain/bin" "$toolchain/lib" "$ctx/rust/"
  # The builder trusts what this host trusts (a TLS-inspecting proxy's CA, say) to reach crates.io.
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/"
  cat >"$ctx/Containerfile" <<'CF'
FROM localhost/redline-test-base:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev pkg-config libssl-dev ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY rust /usr/local/rust
ENV PATH=/usr/local/rust/bin:/usr/local/cargo/bin:$PATH CARGO_HOME=/usr/local/cargo
CF
  podman build --network host -t "$standin" "$ctx"
fi
time podman build --network host \
  --build-arg BASE_IMAGE=localhost/redline-test-base:bookworm \
  --build-arg RUST_IMAGE="$standin" \
  -t redline:source-check -f Containerfile .
podman run --rm redline:source-check --version
podman image inspect --format '{{.Size}}' redline:source-check
