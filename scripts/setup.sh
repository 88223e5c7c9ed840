#!/usr/bin/env bash
# Set up a fresh machine for the 1414 IVR engine: system tools (espeak-ng, sox, graphviz), a virtualenv
# with the engine and its test tools, and the Kazakh and Russian prompts built from menus/.
# Safe to run again: every step skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v sox >/dev/null || need+=(sox libsox-fmt-all)
command -v dot >/dev/null || need+=(graphviz)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}"
  else
    echo "setup: please install ${need[*]} (Debian: sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
fi

python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "setup: Python 3.11 or newer is needed ($("$python" --version 2>&1))" >&2; exit 1; }
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

# Prompts are generated, not committed (an admin's own recordings in prompts/<lang>/ are kept).
.venv/bin/ivr prompts build
echo "setup: done. Run the engine with: .venv/bin/ivr serve"
