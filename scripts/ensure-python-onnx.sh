#!/usr/bin/env bash
# Installs Debian's python3-onnx when no python3 has the `onnx` package, so that @diffuse/onnx's
# tests run the reference ONNX checker (onnx.checker.check_model with full shape inference) on the
# files the exporter writes. Debian's archive only; those tests skip with a message without it.
set -euo pipefail
# The tests try `python3` on the PATH, then Debian's /usr/bin/python3 (where python3-onnx goes).
for py in python3 /usr/bin/python3; do
  if "$py" -c 'import onnx' >/dev/null 2>&1; then
    exit 0
  fi
done
echo "installing Debian's python3-onnx for the ONNX checker tests"
status=0
bash "$(dirname "$0")/apt-install.sh" python3-onnx || status=$?
if [ "$status" = 3 ]; then
  echo "python3-onnx is missing and we are not root: the ONNX checker tests will be skipped" >&2
  exit 0
fi
exit "$status"
