#!/usr/bin/env bash
# Installs the Debian packages that some tests use. Safe to re-run; never fails the build.
#   postgresql: initdb/pg_ctl and the postgres user for the memory store's PostgreSQL suite
#               (pgvector itself comes with the pgserver wheel: bookworm has no pgvector package)
#   chromium, chromium-driver: the chat page's browser test
set -u
PKGS="postgresql chromium chromium-driver"
missing=""
for p in $PKGS; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -z "$missing" ]; then
  echo "system packages present: $PKGS"
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null; then
  echo "not root or no apt-get: tests needing$missing will skip"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
for p in $missing; do  # one at a time: one unavailable package must not block the others
  echo "installing $p"
  apt-get install -y -qq --no-install-recommends "$p" >/dev/null 2>&1 \
    || echo "could not install $p (tests needing it will skip)"
done
