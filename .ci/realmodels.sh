#!/usr/bin/env bash
# Real-model suite (tests/realmodels): torchvision's published counts, in a virtualenv of its own
# with the torch and torchvision it was written against (a CUDA build that runs on the CPU here).
# Run from anywhere; it works from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${TMPDIR:-/tmp}/hetcalc-realmodels-venv"
rm -rf "$venv"
python3 -m venv "$venv"
source "$venv/bin/activate"
python -m pip install --quiet --upgrade pip
pip install --quiet torch==2.14.1 torchvision==0.29.1
# The project with its test extra; the constraints keep pip from trading this torch for another.
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
printf 'torch==2.14.1\ntorchvision==0.29.1\n' > "$constraints"
pip install --quiet -c "$constraints" -e '.[test]'
python -c 'import torch, torchvision; print(f"torch {torch.__version__}, torchvision {torchvision.__version__}")'
# pyproject's addopts holds -q already, and -qq drops pytest's closing summary line: override it.
python -m pytest tests/realmodels -q -o addopts=
