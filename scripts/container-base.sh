#!/usr/bin/env bash
# Prepares what tests/container.rs needs to build and run the redline image without a container
# registry: podman and runc from Debian, and a Debian bookworm base image made with debootstrap
# from the apt mirror this machine uses, trimmed like debian:bookworm-slim and imported into
# podman as localhost/redline-test-base:bookworm. Idempotent; the root file system is cached under
# /var/cache/redline-test so a CI run re-imports at most (seconds), never re-bootstraps.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

BASE_IMAGE=localhost/redline-test-base:bookworm
CACHE=${REDLINE_CONTAINER_CACHE:-/var/cache/redline-test/container}
TARBALL=$CACHE/bookworm-minbase.tar
export CONTAINERS_CONF=$PWD/tests/container/containers.conf

apt_install podman runc debootstrap
mkdir -p "$CACHE"
# One preparer at a time: helpers and CI runs may share the machine.
exec 9>"$CACHE/.lock"
flock 9

# The Debian mirror apt uses here (deb822 `URIs:` or one-line `deb URL`), else deb.debian.org.
mirror() {
  local m
  m=$(grep -rhoE '^(URIs:[[:space:]]*|deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)https?://[^[:space:]]+/debian/?([[:space:]]|$)' \
        /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
      | grep -oE 'https?://[^[:space:]]+' | head -n1 || true)
  echo "${m:-http://deb.debian.org/debian}"
}

if [ ! -s "$TARBALL" ]; then
  m=$(mirror)
  echo "debootstrap bookworm (minbase) from $m into $CACHE" >&2
  root=$(mktemp -d "$CACHE/rootfs.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase bookworm "$root" "$m" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -n 20 "$CACHE/debootstrap.log" >&2; exit 1; }
  # The same sources debian:bookworm-slim has, on this mirror.
  security=${m%/debian*}/debian-security
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s bookworm-security main\n' \
    "$m" "$m" "$security" >"$root/etc/apt/sources.list"
  # Trim like the official slim image: no docs, man pages or locales, now or on later installs.
  cat >"$root/etc/dpkg/dpkg.cfg.d/slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
CFG
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "$root"/usr/share/{man,groff,info,lintian,locale}/* "$root"/var/lib/apt/lists/* \
    "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old "$root"/var/log/*.log
  tar -C "$root" -cf "$TARBALL.tmp" .
  mv "$TARBALL.tmp" "$TARBALL"
fi

if ! podman image exists "$BASE_IMAGE"; then
  echo "importing $TARBALL as $BASE_IMAGE" >&2
  podman import --change 'CMD ["/bin/bash"]' "$TARBALL" "$BASE_IMAGE" >/dev/null
fi
