#!/usr/bin/env bash
# Evaluation on a Slurm cluster: one task, every argument goes to openfields.eval.
#
#   sbatch slurm/eval.sh --checkpoint=outputs/run.pkl --dataset=cocokp
#   sbatch slurm/eval.sh --watch --checkpoint='outputs/run.pkl.epoch*' --dataset=cocokp   # next to training
#
# The #SBATCH lines are defaults for one GPU; adapt them here or on the sbatch command line (which wins):
#   --gres             gpu:1 (--gres=none on CPU-only nodes)
#   --cpus-per-task    data loader workers plus one
#   --mem, --time      memory and wall-clock limit
# Site-specific options (--partition, --account, --qos) have no default; add them as needed.
#
# Environment: OPENFIELDS_VENV (default: .venv in the submission folder) is activated when it exists;
# OPENFIELDS_CONTAINER prefixes the command, e.g. "apptainer exec --nv openfields.sif".
#
#SBATCH --job-name=openfields-eval
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=04:00:00
#SBATCH --output=slurm-%x-%j.out

set -euo pipefail

cd "${SLURM_SUBMIT_DIR:-.}"
venv="${OPENFIELDS_VENV:-$PWD/.venv}"
if [[ -f "$venv/bin/activate" ]]; then
    # shellcheck disable=SC1091
    source "$venv/bin/activate"
fi
read -r -a container <<< "${OPENFIELDS_CONTAINER:-}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}"

command=("${container[@]}" python3 -u -m openfields.eval "$@")
echo "eval.sh: job $SLURM_JOB_ID on $SLURM_JOB_NODELIST"
echo "eval.sh: srun $(printf '%q ' "${command[@]}")"
exec srun "${command[@]}"
