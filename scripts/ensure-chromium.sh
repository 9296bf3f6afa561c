#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests when it is missing. Never downloads a browser
# build of its own: the package comes from Debian's archive through apt.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
echo "installing Debian's chromium for the browser tests"
status=0
bash "$(dirname "$0")/apt-install.sh" chromium || status=$?
if [ "$status" = 3 ]; then
  echo "chromium is missing and we are not root: install Debian's 'chromium' package" >&2
  exit 1
fi
exit "$status"
