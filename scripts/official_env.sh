#!/usr/bin/env bash
# Builds a separate, test-only virtual environment holding the official MedVision code
# (PyPI medvision-bm 1.2.1, installed --no-deps) plus the few packages its parsing and
# summary modules import. Used by the parity tests and benchmarks to compare numbers;
# none of its code is copied into medvision-bench.
# Usage: scripts/official_env.sh [VENV_DIR]   (default .venv-official); prints the python path.
set -euo pipefail
venv="${1:-.venv-official}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import medvision_bm" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet --no-deps "medvision-bm==1.2.1"
  "$venv/bin/python" -m pip install --quiet numpy scipy nibabel tqdm pandas pillow pyyaml
fi
echo "$venv/bin/python"
