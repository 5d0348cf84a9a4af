#!/usr/bin/env bash
# alexnet_jax entry point. On a fresh machine:
#   ./run.sh                 set up, then the main job: synthetic data -> ImageNet weights (when they can be had)
#                            -> a quick study of a few runs, both arms -> the study analysis
#   ./run.sh test [ARGS]     set up, then the linter (ruff) and the whole test suite (ARGS go to pytest)
#   ./run.sh setup           set up only (a virtual environment in .venv with the project installed)
# Main-job flags (all optional):
#   --paper                  the paper-scale protocol (alexnet_jax/configs/paper.py, 14,034 images, 200/400 epochs)
#   --runs=0-2               which runs (splits)              --workdir=DIR   where runs go
#   --data_dir=DIR           a prepared data set to use instead of generating synthetic galaxies
#   --num_examples=N         size of the generated synthetic data set
#   Any other --flag is passed to `python -m alexnet_jax.train` (e.g. --config.model.dtype=bfloat16).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
VENV="${ALEXNET_JAX_VENV:-.venv}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

find_python() {
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      echo "$candidate"; return 0
    fi
  done
  echo "error: alexnet_jax needs Python >= 3.11; none found (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    local py; py="$(find_python)"
    echo "==> creating virtual environment $VENV with $($py --version)"
    "$py" -m venv "$VENV"
  fi
  local stamp; stamp="$(sha256sum pyproject.toml | cut -c1-16)"
  if [ "$(cat "$VENV/.alexnet_jax_installed" 2>/dev/null)" != "$stamp" ]; then
    echo "==> installing alexnet_jax and its dependencies into $VENV (first time: several minutes)"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e ".[all]"
    # The pinned torch/torchvision pair must import together (a CPU-only torch breaks torchvision).
    "$VENV/bin/python" -c 'import torch, torchvision; torchvision.models.alexnet()' \
      || { echo "error: torch and torchvision do not import together in $VENV" >&2; exit 1; }
    echo "$stamp" > "$VENV/.alexnet_jax_installed"
  fi
}

lint() {
  echo "==> ruff check and ruff format --check"
  "$VENV/bin/ruff" check . && "$VENV/bin/ruff" format --check . || {
    echo "error: ruff found problems above; '$VENV/bin/ruff check --fix . && $VENV/bin/ruff format .' fixes most" >&2
    exit 2
  }
}

banner() { printf '\n%s\n%s\n%s\n\n' "================================================================================" "$*" "================================================================================"; }

main_job() {
  local mode=quick runs="" workdir="" data_dir="" num_examples="" extra=()
  for arg in "$@"; do
    case "$arg" in
      --paper) mode=paper ;;
      --runs=*) runs="${arg#*=}" ;;
      --workdir=*) workdir="${arg#*=}" ;;
      --data_dir=*) data_dir="${arg#*=}" ;;
      --num_examples=*) num_examples="${arg#*=}" ;;
      -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
      *) extra+=("$arg") ;;
    esac
  done
  local py="$VENV/bin/python"
  if [ "$mode" = paper ]; then
    runs="${runs:-0-99}"; workdir="${workdir:-runs/paper}"; num_examples="${num_examples:-14034}"
    data_dir="${data_dir:-data/synthetic}"
  else
    runs="${runs:-0-2}"; workdir="${workdir:-runs/quick}"; num_examples="${num_examples:-1200}"
    data_dir="${data_dir:-data/synthetic_quick}"
  fi
  local start=$SECONDS

  if [ ! -f "$data_dir/manifest.json" ]; then
    banner "1/4 generating $num_examples synthetic galaxies into $data_dir"
    "$py" -m alexnet_jax.data prepare --dataset=synthetic --num_examples="$num_examples" --output="$data_dir"
  else
    banner "1/4 data: using the prepared data set in $data_dir"
  fi

  local arms="pretrained,scratch"
  if [ -f weights/imagenet1k_v1/metadata.json ]; then
    banner "2/4 ImageNet weights: already converted in weights/imagenet1k_v1"
  else
    banner "2/4 converting torchvision's ImageNet AlexNet weights into weights/imagenet1k_v1"
    if ! "$py" -m alexnet_jax.convert --output=weights/imagenet1k_v1; then
      arms="scratch"
      banner "NO IMAGENET WEIGHTS: they could not be found or downloaded (offline?).
Training the SCRATCH ARM ONLY. To add the pretrained arm, put alexnet-owt-7be5be79.pth in weights/
(or set ALEXNET_IMAGENET_PTH) and run ./run.sh again: finished scratch runs are kept."
    fi
  fi

  banner "3/4 training runs $runs ($mode protocol, arms: $arms) into $workdir"
  "$py" -m alexnet_jax.train --config="alexnet_jax/configs/$mode.py" --data_dir="$data_dir" \
    --workdir="$workdir" --runs="$runs" --arms="$arms" "${extra[@]}"

  banner "4/4 analysing the study in $workdir"
  "$py" -m alexnet_jax.analyze --workdir="$workdir"
  banner "done in $((SECONDS - start)) s. Report: $workdir/analysis/report.md"
}

case "${1:-}" in
  test) shift; setup; lint; exec "$VENV/bin/python" -m pytest -n auto --maxprocesses=2 --dist loadfile "$@" ;;
  setup) setup ;;
  *) setup; main_job "$@" ;;
esac
