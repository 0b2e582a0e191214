"""The Slurm recipes under recipes/slurm, run through a fake ``sbatch`` (each array task in turn, with the
environment Slurm sets), on the test cohort: the merged cache of three shards equals the cache of one build."""

import os
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ptacl_core import paths
from ptacl_core.preprocessing.cache import Cache

pytestmark = pytest.mark.slow
RECIPES = paths.project_root() / "recipes" / "slurm"

FAKE_SBATCH = textwrap.dedent('''\
    #!{python}
    """A fake sbatch: runs the script at once (array tasks one after another), prints a job id with --parsable."""
    import os, subprocess, sys, itertools
    args, script, array = sys.argv[1:], None, None
    for a in args:
        if a.startswith("--array="):
            array = a.split("=", 1)[1]
        elif not a.startswith("-") and script is None:
            script = a
    with open(os.environ["FAKE_SLURM_LOG"], "a") as log:
        log.write(" ".join(args) + "\\n")
    if os.environ.get("FAKE_SLURM_DRY"):  # record the submission only
        print("1000")
        sys.exit(0)
    low, high = (int(x) for x in array.split("-")) if array else (None, None)
    tasks = range(low, high + 1) if array else [None]
    for task in tasks:
        env = dict(os.environ, SLURM_JOB_ID="1000", SLURM_CPUS_PER_TASK="1")
        if task is not None:
            env.update(SLURM_ARRAY_TASK_ID=str(task), SLURM_ARRAY_TASK_COUNT=str(len(tasks)), SLURM_ARRAY_JOB_ID="1000")
        with open(os.environ["FAKE_SLURM_LOG"] + f".{{task}}.out", "a") as output:  # Slurm's --output file
            code = subprocess.run(["bash", script], env=env, stdout=output, stderr=subprocess.STDOUT).returncode
        if code:
            sys.exit(f"fake sbatch: task {{task}} of {{script}} failed")
    print("1000")
''')


def _fake_slurm(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(FAKE_SBATCH.format(python=sys.executable))
    sbatch.chmod(sbatch.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def test_preprocessing_array_then_merge_equals_one_build(cohort, tiny_cache, tmp_path):
    bin_dir = _fake_slurm(tmp_path)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", COHORT=str(cohort),
               SHARDS=str(tmp_path / "shards"), CACHE=str(tmp_path / "cache"), N="3", PRESET="tiny",
               KIT=str(paths.project_root()), FAKE_SLURM_LOG=str(tmp_path / "sbatch.log"))
    result = subprocess.run(["bash", str(RECIPES / "submit_preprocess.sh")], env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    submitted = (tmp_path / "sbatch.log").read_text().splitlines()
    assert "--array=0-2" in submitted[0] and "--dependency=afterok:1000" in submitted[1]
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == ["shard_0", "shard_1", "shard_2"]
    merged, single = Cache.open(tmp_path / "cache"), Cache.open(tiny_cache)
    assert merged.fingerprint == single.fingerprint
    a = merged.index.sort_values("subject_id").reset_index(drop=True)
    b = single.index.sort_values("subject_id").reset_index(drop=True)
    assert a.subject_id.tolist() == b.subject_id.tolist()
    for name in ("ecg", "cmr"):
        np.testing.assert_array_equal(np.asarray(getattr(merged, name))[a.row.to_numpy()],
                                      np.asarray(getattr(single, name))[b.row.to_numpy()])


def test_recipes_refuse_to_run_without_their_settings(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("COHORT", "SHARDS", "CACHE")}
    for script in ("preprocess_array.sbatch", "merge_cache.sbatch", "grid.sbatch", "evaluate.sbatch",
                   "submit_preprocess.sh", "submit_grid.sh"):
        result = subprocess.run(["bash", str(RECIPES / script)], env=env, capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode != 0 and "set " in result.stderr, (script, result.stderr)


def test_the_grid_submits_its_driver_then_a_gpu_evaluation(tmp_path):
    bin_dir = _fake_slurm(tmp_path)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", CACHE=str(tmp_path / "cache"),
               FAKE_SLURM_LOG=str(tmp_path / "sbatch.log"), FAKE_SLURM_DRY="1", PARTITION="gpu")
    result = subprocess.run(["bash", str(RECIPES / "submit_grid.sh")], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    driver, evaluation = (tmp_path / "sbatch.log").read_text().splitlines()
    assert driver.endswith("grid.sbatch") and evaluation.endswith("evaluate.sbatch")
    assert "--dependency=afterok:1000" in evaluation and "--partition=gpu" in evaluation
    # the driver trains (notebook 02 through submitit), the GPU job evaluates: notebooks split where the GPU is
    assert "--only 02 " in (RECIPES / "grid.sbatch").read_text() and "executor slurm" in (RECIPES / "grid.sbatch").read_text()
    evaluate = (RECIPES / "evaluate.sbatch").read_text()
    assert "#SBATCH --gpus=1" in evaluate and "--only 03,04,05" in evaluate and "device cuda" in evaluate
