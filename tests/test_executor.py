"""The grid executor: the local process pool for real (same weights as sequential for the same seeds and threads),
a failing run that does not stop the grid, skipping finished runs, prerequisites; the cuda backend with fake
devices (GPU pinning per worker); the slurm backend through submitit's local executor."""

import hashlib

import pytest
import torch

from ptacl_core.training import TrainConfig, executor, run_name
from ptacl_core.training.executor import (
    GridFailed,
    GridJob,
    choose_backend,
    execute,
    is_finished,
    log_path,
    usable_cores,
)
from ptacl_core.training.plan import PlanSettings, grid_jobs, train_plan, training_plan
from ptacl_core.training.runs import checkpoint_path, read_checkpoint

pytestmark = pytest.mark.slow


def _job(cache, runs, method, seed, epochs=1, **overrides):
    config = TrainConfig(method=method, cache=str(cache), runs_dir=str(runs), name=run_name(method, "tiny", seed),
                         seed=seed, device="cpu")
    return GridJob((method, seed), config.with_overrides({"optim.epochs": epochs, "optim.batch_size": 8, **overrides}))


def _weights_hash(folder) -> str:
    state = read_checkpoint(folder)["objective"]
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def test_local_pool_gives_the_sequential_weights_and_skips_finished_runs(tiny_cache, tmp_path, monkeypatch):
    jobs = {name: [_job(tiny_cache, tmp_path / name, m, s) for m, s in (("global", 0), ("ptacl", 0), ("ptacl", 1))]
            for name in ("sequential", "local")}
    sequential = execute(jobs["sequential"], "sequential", threads=1, progress=False)
    local = execute(jobs["local"], "local", workers=2, threads=1, progress=False)
    assert not sequential.failed and not local.failed, local.summary()
    assert local.workers == 2 and local.backend == "local"
    for key in sequential.results:
        assert _weights_hash(sequential.results[key].folder) == _weights_hash(local.results[key].folder), key
    for job in jobs["local"]:
        assert "epoch 1:" in log_path(job).read_text()
    bars = []

    class Bar:  # notebook 02 keeps one widget for the whole grid, never one per run or epoch
        def __init__(self, total, initial=0, **_):
            bars.append(self)
            self.n = initial

        def update(self, step):
            self.n += step

        def set_postfix(self, **_):
            pass

        def close(self):
            pass

    monkeypatch.setattr(executor, "tqdm", Bar)
    again = execute(jobs["local"], "local", workers=2, threads=1)
    assert {r.status for r in again.results.values()} == {"skipped"}
    assert len(bars) == 1 and bars[0].n == 3
    assert all(is_finished(job) for job in jobs["local"])


def test_a_failing_run_is_reported_with_its_log_and_the_others_finish(tiny_cache, tmp_path):
    good = _job(tiny_cache, tmp_path, "global", 0)
    bad = _job(tiny_cache, tmp_path, "ptacl", 0, **{"optim.lr": 1e30})  # diverges: NonFiniteLossError in the worker
    needs_bad = GridJob(("ptacl_mae", 0), _job(tiny_cache, tmp_path, "ptacl_mae", 0).config, after=(("ptacl", 0),))
    report = execute([bad, good, needs_bad], "local", workers=2, threads=1, progress=False)
    status = {key: r.status for key, r in report.results.items()}
    assert status == {("ptacl", 0): "failed", ("global", 0): "finished", ("ptacl_mae", 0): "not_started"}
    failed = report.results[("ptacl", 0)]
    assert "NonFinite" in failed.error and "Traceback" in failed.log.read_text()
    assert "log:" in report.summary() and str(failed.log) in report.summary()
    assert checkpoint_path(report.results[("global", 0)].folder).exists()


def test_train_plan_raises_after_the_grid_naming_the_failures(tiny_cache, tmp_path, monkeypatch):
    settings = PlanSettings("tiny", tiny_cache, tmp_path, epochs=1, batch_size=8, lr=1e30, lam=1.0, device="cpu",
                            threads=1)
    with pytest.raises(GridFailed, match="global_tiny_seed0: failed"):
        train_plan([("global", 0)], settings, progress=False, backend="sequential", log=lambda *_: None)


def test_prerequisites_start_from_their_folders():
    settings = PlanSettings("tiny", "cache", "runs", epochs=1, batch_size=8, lr=1e-3, lam=1.0)
    jobs = {job.key: job for job in grid_jobs(training_plan(["ptacl_mae"], 1), settings)}
    mae = jobs[("ptacl_mae", 0)]
    assert set(mae.after) == {("mae_ecg", 0), ("mae_cmr", 0)}
    assert mae.config.init_from.split(",") == [str(jobs[k].folder) for k in mae.after]
    with pytest.raises(ValueError, match="does not hold"):
        execute([mae], "sequential", progress=False)
    with pytest.raises(ValueError, match="twice"):
        execute([jobs[("mae_ecg", 0)]] * 2, "sequential", progress=False)


def test_cuda_backend_pins_one_gpu_group_per_worker(tiny_cache, tmp_path):
    """Fake devices: the runs train on CPU, the executor shares out the listed 'GPUs' (CUDA_VISIBLE_DEVICES per
    worker, written in each run's log)."""
    jobs = [_job(tiny_cache, tmp_path, m, s) for m, s in (("global", 0), ("global", 1), ("ptacl", 0), ("ptacl", 1))]
    report = execute(jobs, "cuda", gpus=["3", "5"], threads=1, progress=False)
    assert not report.failed, report.summary()
    assert report.workers == 2
    pinned = {log_path(job).read_text().split("CUDA_VISIBLE_DEVICES=")[1].split()[0] for job in jobs}
    assert pinned == {"3", "5"}
    with pytest.raises(ValueError, match="2 GPU"):
        execute([_job(tiny_cache, tmp_path / "x", "global", 2)], "cuda", gpus=["0"], gpus_per_run=2, progress=False)


def test_slurm_backend_through_submitit_local_executor(tiny_cache, tmp_path):
    pytest.importorskip("submitit")
    jobs = [_job(tiny_cache, tmp_path, "global", 0), _job(tiny_cache, tmp_path, "ptacl", 0, **{"optim.lr": 1e30})]
    report = execute(jobs, "slurm", slurm={"cluster": "local", "timeout_min": 10, "threads": 1}, progress=False)
    assert report.results[("global", 0)].status == "finished"
    assert report.results[("ptacl", 0)].status == "failed" and "Traceback" in log_path(jobs[1]).read_text()
    assert list((tmp_path / "logs" / "submitit").iterdir())  # submitit's own job folders


def test_backend_choice_and_bad_names(monkeypatch):
    assert usable_cores() >= 1
    with pytest.raises(ValueError, match="backend"):
        choose_backend("threads")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_backend("auto") == ("local" if usable_cores() > 1 else "sequential")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU node
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert choose_backend("auto") == choose_backend("auto", ["auto", "cpu"]) == "cuda"
    assert choose_backend("auto", ["cpu", "cpu"]) == ("local" if usable_cores() > 1 else "sequential")  # told to stay on CPU
    with pytest.raises(ValueError, match="run name"):
        GridJob(("global", 0), TrainConfig(method="global"))


def _fake_run(config, log, threads, gpus_per_run, pinned):
    """A pool job for the pool's own tests: a run named "boom" kills its worker process, the others sleep."""
    import os
    import time
    from pathlib import Path

    if config["name"].startswith("boom"):
        os._exit(3)
    time.sleep(0.3)
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    return str(Path(config["runs_dir"]) / config["name"])


@pytest.mark.parametrize("boom_at, workers", [(0, 2), (1, 3), (4, 2)])
def test_a_dying_worker_fails_its_run_only(tmp_path, boom_at, workers):
    """The runs that shared the dying run's worker pool finish, wherever it sits in the grid (the CI failure of
    2026-12-07: a bystander in flight at both deaths was failed with it)."""
    def job(name, seed):
        config = TrainConfig(method="global", runs_dir=str(tmp_path), name=name, seed=seed, device="cpu")
        return GridJob(("global", seed), config)

    jobs = [job("boom_run" if seed == boom_at else f"quiet_{seed}", seed) for seed in range(5)]
    report = execute(jobs, "local", workers=workers, threads=1, progress=False, job_function=_fake_run)
    status = {key[1]: r.status for key, r in report.results.items()}
    assert status == {s: "failed" if s == boom_at else "finished" for s in range(5)}, report.summary()
    assert "died twice" in report.results[("global", boom_at)].error


def test_jobs_run_after_their_prerequisites_and_cycles_are_refused(tmp_path):
    from ptacl_core.training.executor import dependency_order

    def job(method, after=()):
        config = TrainConfig(method=method, runs_dir=str(tmp_path), name=f"{method}_run", device="cpu")
        return GridJob((method, 0), config, after=tuple((m, 0) for m in after))

    listed = [job("ptacl_mae", ("mae_ecg", "mae_cmr")), job("mae_ecg"), job("mae_cmr")]
    assert [j.key[0] for j in dependency_order(listed)] == ["mae_ecg", "mae_cmr", "ptacl_mae"]
    with pytest.raises(ValueError, match="cycle"):
        dependency_order([job("mae_ecg", ("mae_cmr",)), job("mae_cmr", ("mae_ecg",))])
    with pytest.raises(ValueError, match="cycle"):
        execute([job("global", ("global",))], "local", progress=False)
