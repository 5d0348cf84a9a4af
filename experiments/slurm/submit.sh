#!/usr/bin/env bash
# Submit the study to SLURM: the training array (one task per run) and the analysis job,
# which starts only when every task succeeded (--dependency=afterok).
#
#   experiments/slurm/submit.sh --workdir=runs/paper --data_dir=data/nair_abraham \
#       [--runs=0-99] [--config=experiments/configs/paper.py] [--arms=pretrained,scratch] \
#       [--weights=weights/imagenet1k_v1] [--sbatch="--gres=gpu:1 --time=12:00:00 --partition=gpu"] \
#       [--no_analysis] [-- TRAIN_ARGS...]
#
# --runs is a SLURM array spec: 0-99, 0-9,49, or 0-99%8 to run at most 8 at a time.
# --sbatch options go to both jobs except --gres/--gpus*, which only the training array gets.
# TRAIN_ARGS after `--` go to `python -m alexnet_jax.train` (e.g. --config.model.dtype=bfloat16).
# Prints the two job ids. Run it from the repository root (the jobs cd to the submit dir).
set -euo pipefail

workdir="" data_dir="" runs="0-99" config="experiments/configs/paper.py" arms="pretrained,scratch" weights=""
sbatch_opts="" analysis=1 train_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --workdir=*) workdir="${1#*=}" ;;
    --data_dir=*) data_dir="${1#*=}" ;;
    --runs=*) runs="${1#*=}" ;;
    --config=*) config="${1#*=}" ;;
    --arms=*) arms="${1#*=}" ;;
    --weights=*) weights="${1#*=}" ;;
    --sbatch=*) sbatch_opts="${1#*=}" ;;
    --no_analysis) analysis=0 ;;
    --) shift; train_args=("$@"); break ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "error: unknown argument $1 (see $0 --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$workdir" ] || { echo "error: --workdir=DIR is required (see $0 --help)" >&2; exit 2; }
command -v sbatch >/dev/null || { echo "error: sbatch not found: this machine is not a SLURM submit host" >&2; exit 2; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
case "$workdir" in /*) ;; *) workdir="$repo/$workdir" ;; esac
case "$data_dir" in ""|/*) ;; *) data_dir="$repo/$data_dir" ;; esac
mkdir -p "$workdir/logs"

read -r -a common <<< "$sbatch_opts"
analysis_opts=()
for opt in "${common[@]}"; do
  case "$opt" in --gres=*|--gpus=*|--gpus-per-*=*|-G*) ;; *) analysis_opts+=("$opt") ;; esac
done
env_list="ALL,ALEXNET_JAX_REPO=$repo,ALEXNET_JAX_WORKDIR=$workdir,ALEXNET_JAX_CONFIG=$config,ALEXNET_JAX_ARMS=$arms"
[ -n "$data_dir" ] && env_list+=",ALEXNET_JAX_DATA_DIR=$data_dir"
[ -n "$weights" ] && env_list+=",ALEXNET_JAX_WEIGHTS=$weights"

cd "$repo"
array_id=$(sbatch --parsable --array="$runs" --chdir="$repo" --output="$workdir/logs/slurm_%A_%a.out" \
  --export="$env_list" "${common[@]}" "$here/train_array.sbatch" "${train_args[@]}")
array_id="${array_id%%;*}"
echo "training array: job $array_id (runs $runs), logs in $workdir/logs/slurm_${array_id}_<run>.out"
if [ "$analysis" = 1 ]; then
  analysis_id=$(sbatch --parsable --dependency="afterok:$array_id" --chdir="$repo" \
    --output="$workdir/logs/slurm_analyze_%j.out" --export="$env_list" "${analysis_opts[@]}" "$here/analyze.sbatch")
  analysis_id="${analysis_id%%;*}"
  echo "analysis: job $analysis_id (after every task of $array_id succeeds), report in $workdir/analysis/"
fi
