#!/usr/bin/env bash
# A real SLURM test on this one machine: start munged, slurmctld and slurmd with a private
# config under a temporary directory, submit a small training array of tiny runs plus the
# analysis job with experiments/slurm/submit.sh, wait (bounded), and check every run's
# results.json. Nothing outside the temporary directory is touched; every daemon started
# here is stopped by its pid on exit.
#
#   experiments/slurm/local_cluster_test.sh [--runs=0-1] [--timeout=600] [--keep]
#
# Needs: munged, slurmctld, slurmd, sbatch, squeue, scontrol (Debian/Ubuntu:
# `apt-get install -y slurm-wlm munge`), and the project's venv (.venv, or $ALEXNET_JAX_PYTHON).
# Exit status: 0 all checks passed, 1 a check failed, 77 SLURM is not installed.
set -euo pipefail

runs="0-1" timeout=600 keep=0
for arg in "$@"; do
  case "$arg" in
    --runs=*) runs="${arg#*=}" ;;
    --timeout=*) timeout="${arg#*=}" ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "error: unknown argument $arg" >&2; exit 2 ;;
  esac
done

for tool in munged slurmctld slurmd sbatch squeue scontrol sinfo; do
  if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
    echo "SKIP: $tool not found; install SLURM first (apt-get install -y slurm-wlm munge)" >&2
    exit 77
  fi
done
export PATH="$PATH:/usr/sbin"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
PYTHON="${ALEXNET_JAX_PYTHON:-$repo/.venv/bin/python}"
[ -x "$PYTHON" ] || { echo "error: no Python at $PYTHON (run ./run.sh setup or set ALEXNET_JAX_PYTHON)" >&2; exit 1; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/alexnet_jax_slurm.XXXXXX")"
chmod 755 "$tmp"
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  if [ "$keep" = 1 ] || [ "$status" != 0 ]; then
    echo "kept $tmp (daemon logs: $tmp/*.log)"
  else
    rm -rf "$tmp"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { echo "[local-slurm $(date +%T)] $*"; }

# ---- munge: a private key and socket; runs as the current user
mkdir -p "$tmp/munge" && chmod 755 "$tmp/munge"
head -c 1024 /dev/urandom > "$tmp/munge/munge.key" && chmod 400 "$tmp/munge/munge.key"
socket="$tmp/munge/munge.socket"
munged --force --foreground --key-file="$tmp/munge/munge.key" --socket="$socket" \
  --pid-file="$tmp/munge/munged.pid" --log-file="$tmp/munged.log" --seed-file="$tmp/munge/munged.seed" > "$tmp/munged.stdout" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -S "$socket" ] && break; sleep 0.1; done
[ -S "$socket" ] || { echo "error: munged did not start; see $tmp/munged.log" >&2; cat "$tmp/munged.log" >&2 || true; exit 1; }
log "munged up ($socket)"

# ---- slurm.conf for this single machine
host="$(hostname -s)"
user="$(id -un)"
cpus="$(nproc)"
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
read -r ctl_port slurmd_port < <("$PYTHON" - <<'EOF'
import socket
ports = []
sockets = []
for _ in range(2):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); sockets.append(s); ports.append(s.getsockname()[1])
print(*ports)
EOF
)
mkdir -p "$tmp/state" "$tmp/spool"
export SLURM_CONF="$tmp/slurm.conf"
cat > "$SLURM_CONF" <<EOF
ClusterName=alexnetjax
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctl_port
SlurmdPort=$slurmd_port
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool/slurmd
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SwitchType=switch/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=10
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

slurmctld -D -i -f "$SLURM_CONF" > "$tmp/slurmctld.stdout" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" -N "$host" > "$tmp/slurmd.stdout" 2>&1 &
pids+=($!)
up=0
for _ in $(seq 60); do
  state="$(sinfo -h -n "$host" -o %t 2>/dev/null || true)"
  case "$state" in idle*|mix*|alloc*) up=1; break ;; esac
  sleep 0.5
done
if [ "$up" != 1 ]; then
  echo "error: the node did not come up (state '${state:-none}')." >&2
  for f in slurmctld.log slurmctld.stdout slurmd.log slurmd.stdout; do echo "--- $f" >&2; tail -20 "$tmp/$f" >&2 2>/dev/null || true; done
  exit 1
fi
log "slurmctld and slurmd up: node $host, $cpus CPUs, partition debug"

# ---- a tiny prepared data set (random images; no dependence on the synthetic generator)
data="$tmp/data"
"$PYTHON" - "$data" <<'EOF'
import sys
import numpy as np
from alexnet_jax import paper
from alexnet_jax.data.prepared import write_prepared
rng = np.random.default_rng(0)
labels = np.arange(48) % 4
images = rng.integers(0, 256, (48, 256, 256, 3), dtype=np.uint8)
write_prepared(sys.argv[1], images, labels, name="slurm_test", source="random", class_names=paper.CLASS_NAMES)
EOF

workdir="$tmp/study"
log "submitting runs $runs (the tiny test model on the quick config, scratch arm, 1 epoch) and the analysis job"
submitted="$("$here/submit.sh" --workdir="$workdir" --data_dir="$data" --runs="$runs" \
  --config=experiments/configs/quick.py --arms=scratch --sbatch="--cpus-per-task=1 --time=30" -- \
  --config.epochs.scratch=1 --config.model.name=tiny --config.data.image_size=32 --config.augment.crop_size=28 \
  --config.batch_size=8 --config.eval_batch_size=8)"
echo "$submitted"
array_id="$(sed -n 's/^training array: job \([0-9]*\).*/\1/p' <<< "$submitted")"
analysis_id="$(sed -n 's/^analysis: job \([0-9]*\).*/\1/p' <<< "$submitted")"
[ -n "$array_id" ] && [ -n "$analysis_id" ] || { echo "error: could not read the job ids" >&2; exit 1; }

deadline=$((SECONDS + timeout))
while [ -n "$(squeue -h -j "$array_id,$analysis_id" -o %i 2>/dev/null)" ]; do
  if [ $SECONDS -ge $deadline ]; then
    echo "error: jobs still queued or running after ${timeout}s:" >&2
    squeue -j "$array_id,$analysis_id" >&2 || true
    exit 1
  fi
  sleep 2
done
log "all jobs left the queue after $((SECONDS - deadline + timeout))s"

failed=0
for job in $(scontrol show job -o "$array_id" 2>/dev/null | sed -n 's/.*JobId=\([0-9]*\) .*ArrayTaskId=\([0-9]*\) .*JobState=\([A-Z_]*\) .*ExitCode=\([0-9:]*\).*/\2:\3:\4/p'); do
  log "array task ${job%%:*}: ${job#*:}"
  case "$job" in *:COMPLETED:0:0) ;; *) failed=1 ;; esac
done
analysis_state="$(scontrol show job -o "$analysis_id" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\) .*/\1/p')"
log "analysis job $analysis_id: ${analysis_state:-unknown (purged)}"
"$PYTHON" - "$workdir" "$runs" <<'EOF' || failed=1
import sys
from pathlib import Path
from alexnet_jax import results
workdir, spec = Path(sys.argv[1]), sys.argv[2].split("%")[0]
wanted = set()
for part in spec.split(","):
    low, _, high = part.partition("-")
    wanted.update(range(int(low), int(high or low) + 1))
bad = []
for r in sorted(wanted):
    path = results.run_dir(workdir, r) / results.RESULTS_FILENAME
    try:
        record = results.load_results(path)
        assert results.is_complete(record, "scratch"), "scratch arm incomplete"
        print(f"run {r:03d}: complete, test acc {record['arms']['scratch']['test_acc']}")
    except Exception as error:  # report every run, then fail
        bad.append(f"run {r:03d}: {error}")
for line in bad:
    print("FAILED", line)
sys.exit(1 if bad else 0)
EOF
if [ "$analysis_state" != COMPLETED ]; then
  echo "analysis job did not complete (state ${analysis_state:-unknown}); log:" >&2
  cat "$workdir"/logs/slurm_analyze_*.out >&2 2>/dev/null || true
  failed=1
fi
# ---- multi-host mechanics: two tasks of one job under srun, jax.distributed.initialize()
# reads coordinator, process count and index from SLURM; one all-reduce over both processes.
dist_out="$tmp/distributed_%j.out"
dist_id="$(sbatch --parsable --ntasks=2 --cpus-per-task=1 --output="$dist_out" --chdir="$repo" \
  --export=ALL,JAX_PLATFORMS=cpu,XLA_FLAGS=--xla_force_host_platform_device_count=2 \
  --wrap "srun --kill-on-bad-exit=1 $PYTHON -m alexnet_jax.study check-distributed")"
dist_id="${dist_id%%;*}"
deadline=$((SECONDS + 180))
while [ -n "$(squeue -h -j "$dist_id" -o %i 2>/dev/null)" ] && [ $SECONDS -lt $deadline ]; do sleep 1; done
dist_file="$tmp/distributed_${dist_id}.out"
if [ "$(grep -c '"ok": true' "$dist_file" 2>/dev/null)" = 2 ]; then
  log "srun, 2 tasks: jax.distributed.initialize() from SLURM and an all-reduce over 4 devices in 2 processes work"
else
  echo "error: the 2-task jax.distributed check failed; output:" >&2
  grep -v '^I1\|Gloo' "$dist_file" >&2 2>/dev/null || true
  failed=1
fi

if [ "$failed" != 0 ]; then
  for f in "$workdir"/logs/*.out; do echo "--- $f" >&2; tail -30 "$f" >&2; done
  echo "FAILED" >&2
  exit 1
fi
log "PASSED: every array task trained its run and the analysis job ran after them"
