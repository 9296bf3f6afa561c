#!/usr/bin/env bash
# Installs Debian packages from Debian's archive through apt (as root, or with sudo), quietly.
# Usage: apt-install.sh PACKAGE...   Exits 3 without installing when neither root nor sudo is
# available, so the caller decides whether that is an error (chromium) or not (python3-onnx).
set -euo pipefail
if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null 2>&1; then
  exit 3
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get -o DPkg::Lock::Timeout=900 update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=900 install -y -qq "$@" >/dev/null
