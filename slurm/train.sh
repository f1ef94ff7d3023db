#!/usr/bin/env bash
# Distributed training on a Slurm cluster: one task per GPU, every argument goes to openfields.train.
#
#   sbatch slurm/train.sh --dataset=cocokp --basenet=shufflenetv2k16 --lr=0.0003 --batch-size=8 ...
#   sbatch --signal=USR1@300 slurm/train.sh --requeue --output=outputs/run.pkl --resume=auto ...
#
# --requeue (first, before the training arguments): when a stop signal (Slurm's --signal, preemption)
# ends training with a resumable checkpoint (exit code 75), requeue the job; the requeued job passes the
# same arguments, so give --resume=auto and a fixed --output (see docs/hpc.md).
#
# The #SBATCH lines are defaults for one node with 4 GPUs; adapt them to your cluster here or on the
# sbatch command line (which wins):
#   --nodes            number of nodes
#   --ntasks-per-node  one task per GPU: the number of GPUs per node
#   --gres             GPUs per node (gpu:N; --gres=none on CPU-only nodes)
#   --cpus-per-task    CPU cores per task: data loader workers (--loader-workers) plus one
#   --mem              memory per node
#   --time             wall-clock limit (with --signal=USR1@300 a checkpoint is written 5 minutes before)
# Site-specific options (--partition, --account, --qos) have no default; add them as needed.
#
# Environment: OPENFIELDS_VENV (default: .venv in the submission folder) is activated when it exists;
# OPENFIELDS_CONTAINER prefixes the command, e.g. "apptainer exec --nv openfields.sif".
#
#SBATCH --job-name=openfields-train
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=8
#SBATCH --mem=64G
#SBATCH --time=24:00:00
#SBATCH --output=slurm-%x-%j.out

set -euo pipefail

requeue=0
if [[ "${1:-}" == "--requeue" ]]; then
    requeue=1
    shift
fi

cd "${SLURM_SUBMIT_DIR:-.}"
venv="${OPENFIELDS_VENV:-$PWD/.venv}"
if [[ -f "$venv/bin/activate" ]]; then
    # shellcheck disable=SC1091
    source "$venv/bin/activate"
fi
read -r -a container <<< "${OPENFIELDS_CONTAINER:-}"

# the rendezvous: the first node of the job, a port derived from the job id
# (the rule of openfields.training.distributed.default_master_port, which Python applies when these are unset)
if [[ -z "${MASTER_ADDR:-}" ]]; then
    hosts="$(scontrol show hostnames "$SLURM_JOB_NODELIST")"
    MASTER_ADDR="${hosts%%$'\n'*}"
fi
MASTER_PORT="${MASTER_PORT:-$((15000 + SLURM_JOB_ID % 10000))}"
export MASTER_ADDR MASTER_PORT
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

command=("${container[@]}" python3 -u -m openfields.train --ddp "$@")
echo "train.sh: job $SLURM_JOB_ID, $SLURM_NTASKS tasks on $SLURM_JOB_NODELIST, rendezvous $MASTER_ADDR:$MASTER_PORT"
echo "train.sh: srun $(printf '%q ' "${command[@]}")"

# a stop signal to this shell must not end it before srun returns: the steps checkpoint first
trap 'echo "train.sh: stop signal received; waiting for the training to checkpoint" >&2' TERM USR1
status=0
srun --kill-on-bad-exit=1 "${command[@]}" || status=$?

if [[ $status -eq 75 && $requeue -eq 1 ]]; then
    echo "train.sh: stopped with a resumable checkpoint; requeueing job $SLURM_JOB_ID"
    scontrol requeue "$SLURM_JOB_ID"
fi
exit "$status"
