#!/bin/bash
# The grid on a Slurm cluster: the driver (grid.sbatch: notebook 02, one GPU job per run through submitit), then the
# evaluation on a GPU (evaluate.sbatch: notebooks 03-05) once the driver succeeded.
#   CACHE=/scratch/ptacl/cache PARTITION=gpu SBATCH_OPTIONS="--account=myproj" recipes/slurm/submit_grid.sh
set -euo pipefail
: "${CACHE:?set CACHE to the training cache (merge_cache.sbatch)}"
HERE=$(cd "$(dirname "$0")" && pwd)
export CACHE KIT="${KIT:-$(pwd)}" PROFILE="${PROFILE:-paper}" PARTITION="${PARTITION:-gpu}"
# shellcheck disable=SC2086  # SBATCH_OPTIONS holds several options
driver=$(sbatch --parsable ${SBATCH_OPTIONS:-} --export=ALL "$HERE/grid.sbatch")
# shellcheck disable=SC2086
evaluation=$(sbatch --parsable ${SBATCH_OPTIONS:-} --partition="$PARTITION" --dependency=afterok:"${driver%%;*}" \
    --export=ALL "$HERE/evaluate.sbatch")
echo "grid: driver job $driver, evaluation job $evaluation"
