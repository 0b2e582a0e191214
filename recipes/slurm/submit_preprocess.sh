#!/bin/bash
# Preprocess a cohort on a Slurm cluster: N array tasks (one shard each), then one merge once all succeeded.
#   COHORT=/path/to/cohort SHARDS=/scratch/ptacl/shards CACHE=/scratch/ptacl/cache N=16 recipes/slurm/submit_preprocess.sh
# Extra sbatch options (account, partition) go in SBATCH_OPTIONS, e.g. SBATCH_OPTIONS="--account=abc --partition=cpu".
set -euo pipefail
: "${COHORT:?set COHORT to the cohort folder}" "${SHARDS:?set SHARDS to a folder for the shard caches}" "${CACHE:?set CACHE to the merged cache folder}"
N=${N:-16}
HERE=$(cd "$(dirname "$0")" && pwd)
export COHORT SHARDS CACHE KIT="${KIT:-$(pwd)}" PRESET="${PRESET:-default}"
# shellcheck disable=SC2086  # SBATCH_OPTIONS holds several options
array=$(sbatch --parsable ${SBATCH_OPTIONS:-} --array=0-$((N - 1)) --export=ALL "$HERE/preprocess_array.sbatch")
# shellcheck disable=SC2086
merge=$(sbatch --parsable ${SBATCH_OPTIONS:-} --dependency=afterok:"${array%%;*}" --export=ALL "$HERE/merge_cache.sbatch")
echo "preprocessing: array job $array ($N shards), merge job $merge -> $CACHE"
