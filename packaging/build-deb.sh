#!/usr/bin/env bash
# Builds the Debian package of redline with dpkg-deb: target/debian/redline_<version>-1_<arch>.deb
#
#   cargo build --release --locked && packaging/build-deb.sh [--binary PATH] [--out DIR]
#
# Contents: /usr/bin/redline; the systemd unit; /etc/redline/{redline,thresholds}.yaml as
# conffiles (an upgrade never overwrites local edits); the generated rules and rule tests under
# /usr/share/redline/rules, the Grafana dashboards under /usr/share/redline/dashboards; README,
# runbooks and an example environment file under /usr/share/doc/redline. Depends are computed by
# dpkg-shlibdeps from the binary. Plain dpkg-deb, not cargo-deb: the same package without a
# five-minute `cargo install` on every fresh CI machine.
set -euo pipefail
cd "$(dirname "$0")/.."

binary=target/release/redline
out=target/debian
while (($#)); do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--binary PATH] [--out DIR]" >&2; exit 2 ;;
  esac
done
[ -x "$binary" ] || { echo "$binary not found: run cargo build --release --locked first" >&2; exit 1; }

name=redline
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
revision=1
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root

install -D -m 0755 "$binary" "$root/usr/bin/redline"
install -D -m 0644 systemd/redline.service "$root/lib/systemd/system/redline.service"
install -D -m 0644 systemd/redline.yaml "$root/etc/redline/redline.yaml"
install -D -m 0644 rules/thresholds.yaml "$root/etc/redline/thresholds.yaml"
install -D -m 0644 -t "$root/usr/share/redline/rules" rules/redline.rules.yml rules/redline.rules.test.yml
install -D -m 0644 -t "$root/usr/share/redline/dashboards" grafana/*.json
install -D -m 0644 -t "$root/usr/share/doc/$name" README.md docs/runbooks.md
install -D -m 0644 systemd/redline.env "$root/usr/share/doc/$name/examples/redline.env"
cat >"$root/usr/share/doc/$name/copyright" <<COPY
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: redline

Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
COPY

# Runtime dependencies of the binary, the way debhelper finds them.
mkdir -p "$stage/debian" "$root/DEBIAN"
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$name" "$name" >"$stage/debian/control"
depends=$(cd "$stage" && dpkg-shlibdeps -O -eroot/usr/bin/redline 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "dpkg-shlibdeps found no dependencies" >&2; exit 1; }

install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
printf '/etc/redline/redline.yaml\n/etc/redline/thresholds.yaml\n' >"$root/DEBIAN/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
  >"$root/DEBIAN/md5sums"
cat >"$root/DEBIAN/control" <<CONTROL
Package: $name
Version: $version-$revision
Architecture: $arch
Maintainer: redline maintainers <redline@localhost>
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: $depends
Section: admin
Priority: optional
Description: Redis, job-queue, PostgreSQL and host monitoring for Prometheus
 redline samples Redis, the job queues stored in it (BullMQ, Bull, Celery, RQ,
 Sidekiq, Redis Streams), PostgreSQL and the host into Prometheus metrics, and
 generates alert rules, promtool tests and Grafana dashboards from one
 thresholds file (/etc/redline/thresholds.yaml).
CONTROL

# Reproducible: every file dated by the last commit, not by this build.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$out"
deb="$out/${name}_${version}-${revision}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
