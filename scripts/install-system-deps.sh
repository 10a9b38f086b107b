#!/usr/bin/env bash
# Installs the Debian packages that some tests use. Safe to re-run; never fails the build.
set -u
PKGS="postgresql postgresql-15-pgvector chromium chromium-driver"
missing=""
for p in $PKGS; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -z "$missing" ]; then
  echo "system packages present:$PKGS"
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null; then
  echo "not root or no apt-get: tests needing$missing will skip"
  exit 0
fi
echo "installing system packages:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1 \
  || echo "could not install some of:$missing (tests needing them will skip)"
