#!/usr/bin/env bash
# The venv of public Python CLIs that tests/it/python_init runs `execgov init` on:
# packages from PyPI at pinned versions, not written for the tests.
#
#   venv.sh install     venv under $HOME/.cache/execgov-pyinit (reused while the pins match)
#   venv.sh path        prints the venv's folder
set -euo pipefail

PINS="csvkit==2.2.0"
CACHE="${EXECGOV_PYINIT_CACHE:-$HOME/.cache/execgov-pyinit}"
VENV="$CACHE/venv"

die() { echo "venv.sh: $*" >&2; exit 1; }

# The interpreter itself, not a pyenv shim.
base_python() {
  if command -v pyenv >/dev/null 2>&1 && pyenv which python3 >/dev/null 2>&1; then
    pyenv which python3
  else
    command -v python3 || die "python3 is needed"
  fi
}

installed() {
  [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.execgov-pins" 2>/dev/null)" = "$PINS" ]
}

case "${1:-}" in
  install)
    if installed; then
      echo "python_init venv already installed in $VENV ($PINS)"
      exit 0
    fi
    mkdir -p "$CACHE"
    rm -rf "$VENV"
    "$(base_python)" -m venv "$VENV"
    # shellcheck disable=SC2086
    if "$VENV/bin/pip" install --quiet --disable-pip-version-check uv; then
      "$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" $PINS
    else
      "$VENV/bin/pip" install --quiet --disable-pip-version-check $PINS
    fi
    "$VENV/bin/csvstat" --version
    echo "$PINS" > "$VENV/.execgov-pins"
    ;;
  path) echo "$VENV" ;;
  *) die "usage: venv.sh install | path" ;;
esac
