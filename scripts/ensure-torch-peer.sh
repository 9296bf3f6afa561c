#!/usr/bin/env bash
# Installs the bench's PyTorch peer from Debian's archive when it is missing: python3-torch, and
# libopenblas0-pthread, without which Debian's torch runs on the reference BLAS and the comparison
# would hobble PyTorch (apps/bench/README.md, "PyTorch peer"). Run by `pnpm bench` before the bench.
# Never fails the bench: without root or sudo (or with DIFFUSE_NO_APT=1) it says what to install, and
# the bench reports the peer as unavailable.
set -uo pipefail
have_torch=0
for py in /usr/bin/python3 python3; do
  if "$py" -c 'import torch' >/dev/null 2>&1; then have_torch=1; break; fi
done
have_blas=0
if ! command -v dpkg-query >/dev/null 2>&1; then
  have_blas=1 # not Debian: nothing to install here, the bench records the BLAS torch loaded
elif dpkg-query -W -f='${Status}' libopenblas0-pthread 2>/dev/null | grep -q 'ok installed'; then
  have_blas=1
fi
if [ "$have_torch" = 1 ] && [ "$have_blas" = 1 ]; then exit 0; fi
if [ "${DIFFUSE_NO_APT:-0}" = 1 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "PyTorch peer incomplete: install python3-torch libopenblas0-pthread to compare with PyTorch" >&2
  exit 0
fi
echo "installing Debian's python3-torch and libopenblas0-pthread for the bench's PyTorch peer"
status=0
bash "$(dirname "$0")/apt-install.sh" python3-torch libopenblas0-pthread || status=$?
if [ "$status" != 0 ]; then
  echo "could not install the PyTorch peer (status $status): the bench reports it as unavailable" >&2
fi
exit 0
