#!/usr/bin/env bash
# Set up (or reuse) the virtual environment, then optionally run something in it.
#
#   bash setup.sh demo            # set up, then clean the bundled digits demo
#   bash setup.sh test [-q ...]   # set up, then run the test suite
#   bash setup.sh                 # set up only
#
# The torch/torchvision pair is installed first (DATACLEANER_TORCH overrides it), then the
# package with its test extras. A venv whose installed requirements already match is reused
# as it is: nothing is reinstalled.
set -euo pipefail
cd "$(dirname "$0")"

VENV="${DATACLEANER_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ "$(uname -m)" = "aarch64" ]; then
  DEFAULT_TORCH="torch==2.9.1 torchvision==0.24.1"
else
  DEFAULT_TORCH="torch==2.14.1 torchvision==0.29.1 nvidia-nvjitlink==13.4.92"
fi
TORCH_SPEC="${DATACLEANER_TORCH:-$DEFAULT_TORCH}"

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
stamp="$VENV/.datacleaner-requirements"
want="$(cat pyproject.toml setup.sh | sha256sum | cut -c1-16) $TORCH_SPEC"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ] || ! "$VENV/bin/python" -c "import datacleaner" 2>/dev/null; then
  echo "setup: installing into $VENV (first time: a few minutes)" >&2
  if ! "$VENV/bin/python" -c "import torch, torchvision" 2>/dev/null; then
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install -q --disable-pip-version-check $TORCH_SPEC 2>&1 | grep -v "^WARNING: Location" >&2 || true
    "$VENV/bin/python" -c "import torch, torchvision" || { echo "setup: torch/torchvision did not install" >&2; exit 1; }
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check -e ".[test]" 2>&1 | grep -v "^WARNING: Location" >&2 || true
  "$VENV/bin/python" -c "import datacleaner, timm, albumentations, pytest" || { echo "setup: package install failed" >&2; exit 1; }
  echo "$want" > "$stamp"
fi

export NO_ALBUMENTATIONS_UPDATE=1
case "${1:-}" in
  demo) shift; exec "$VENV/bin/datacleaner" demo "$@" ;;
  test) shift; exec "$VENV/bin/python" -m pytest "$@" ;;
  "") echo "setup: ready; activate with: source $VENV/bin/activate" >&2 ;;
  *) shift 0; exec "$VENV/bin/datacleaner" "$@" ;;
esac
