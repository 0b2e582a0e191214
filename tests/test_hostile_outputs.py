"""Nothing lost or overwritten (issue 20 §2): output folders that are, hold or sit inside inputs, symbolic links,
folders of other files; tampered or partly copied caches and shards; two writers of one run, a kill between the
metrics row and the checkpoint, run names that are paths; a full disk (a small tmpfs, or a file-size limit)."""

import errno
import hashlib
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ptacl_core import paths
from ptacl_core.__main__ import main
from ptacl_core.preprocessing.build import Shard, build_cache
from ptacl_core.preprocessing.cache import Cache, CacheDamagedError
from ptacl_core.preprocessing.config import CmrConfig, EcgConfig, PreprocessConfig
from ptacl_core.preprocessing.merge import merge_caches
from ptacl_core.training import TrainConfig, train
from ptacl_core.training import runs as runs_module
from ptacl_core.training.runs import RunBusyError, check_run_name, lock_run, save_checkpoint, truncate_metrics

FAST = PreprocessConfig(ecg=EcgConfig(fs=250), cmr=CmrConfig(size=32, n_frames=20))
REPO = Path(__file__).resolve().parent.parent


def _one_line(capsys, *argv) -> tuple[int, str]:
    status = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return status, err


def _digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (links not followed), by relative path."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


@pytest.fixture(scope="module")
def small_cohort(cohort, tmp_path_factory):
    """12 subjects of the session cohort, with their own manifest."""
    folder = tmp_path_factory.mktemp("small_cohort")
    manifest = pd.read_csv(cohort / "manifest.csv").head(12)
    for name in ("ecg", "cmr"):
        (folder / name).symlink_to(cohort / name, target_is_directory=True)
    manifest.to_csv(folder / "manifest.csv", index=False)
    phenotypes = pd.read_csv(cohort / "phenotypes.csv")
    phenotypes[phenotypes.subject_id.isin(manifest.subject_id)].to_csv(folder / "phenotypes.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def built_shards(small_cohort, tmp_path_factory):
    """Two finished shard caches (``--shard 0/2``, ``1/2``) of the small cohort; copy them before tampering."""
    folder = tmp_path_factory.mktemp("shards")
    for index in range(2):
        build_cache(small_cohort, folder / f"shard{index}", FAST, progress=False, shard=Shard(index, 2))
    return folder


@pytest.fixture
def shards(built_shards, tmp_path):
    copies = tmp_path / "shards"
    shutil.copytree(built_shards, copies)
    return [copies / "shard0", copies / "shard1"]


# --- merge-cache: its output apart from its inputs -------------------------------------------------------------

@pytest.mark.parametrize("where", ["the shard", "inside the shard", "around the shards", "a link to the shard"])
def test_merge_refuses_an_output_that_is_in_or_around_a_shard_before_writing(shards, where, capsys):
    out = {"the shard": shards[0], "inside the shard": shards[0] / "merged", "around the shards": shards[0].parent,
           "a link to the shard": shards[0].parent.parent / "link"}[where]
    if where == "a link to the shard":
        out.symlink_to(shards[0], target_is_directory=True)
    before = _digests(shards[0].parent)
    status, err = _one_line(capsys, "merge-cache", "--out", out, *shards)
    assert status == 2 and "shard" in err and str(shards[0]) in err
    assert _digests(shards[0].parent) == before  # the shard read, never wiped (the old merge reported success)
    assert not (shards[0] / "merged").exists()


def test_merge_into_a_new_folder_still_equals_the_whole_build_and_reruns(small_cohort, shards, tmp_path):
    whole = tmp_path / "whole"
    build_cache(small_cohort, whole, FAST, progress=False)
    merge_caches(shards, tmp_path / "merged")
    merged = _digests(tmp_path / "merged")
    merge_caches(shards, tmp_path / "merged")  # a rerun of the same merge rewrites the same cache
    assert _digests(tmp_path / "merged") == merged
    for name in ("ecg.npy", "cmr.npy"):
        np.testing.assert_array_equal(np.load(whole / name), np.load(tmp_path / "merged" / name))
    pd.testing.assert_frame_equal(pd.read_csv(whole / "index.csv"), pd.read_csv(tmp_path / "merged/index.csv"),
                                  check_dtype=False)
    assert not [p for p in (tmp_path / "merged").iterdir() if paths.is_temporary(p)]


def test_merge_refuses_an_output_holding_other_files_links_or_another_cache(small_cohort, shards, tmp_path, capsys):
    victim = tmp_path / "victim.csv"
    victim.write_text("someone's table\n")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "index.csv").symlink_to(victim)
    status, err = _one_line(capsys, "merge-cache", "--out", linked, *shards)
    assert status == 2 and "symbolic link" in err and "index.csv" in err
    assert victim.read_text() == "someone's table\n" and not (linked / "ecg.npy").exists()

    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real, target_is_directory=True)
    status, err = _one_line(capsys, "merge-cache", "--out", tmp_path / "alias", *shards)
    assert status == 2 and "is a symbolic link" in err and not any(real.iterdir())

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me\n")
    status, err = _one_line(capsys, "merge-cache", "--out", mine, *shards)
    assert status == 2 and "other files (notes.txt)" in err and sorted(p.name for p in mine.iterdir()) == ["notes.txt"]

    other = tmp_path / "other_build"
    build_cache(small_cohort, other, FAST.with_overrides({"ecg.notch_hz": 60.0}), progress=False)
    before = _digests(other)
    status, err = _one_line(capsys, "merge-cache", "--out", other, *shards)
    assert status == 2 and "another build" in err and _digests(other) == before

    (tmp_path / "a_file").write_text("x")
    status, err = _one_line(capsys, "merge-cache", "--out", tmp_path / "a_file", *shards)
    assert status == 2 and "is a file" in err


def test_merge_out_of_space_is_refused_up_front_and_creates_nothing(shards, tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "free_bytes", lambda folder: 1000)
    with pytest.raises(paths.DiskFullError, match=r"merged: disk full writing the cache arrays of 12 subjects \([\d,]+ bytes needed, 1,000 free\)"):
        merge_caches(shards, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


# --- merge-cache: shards validated against their arrays and each other ------------------------------------------

def test_merge_refuses_an_index_row_beyond_the_arrays(shards, tmp_path):
    index = pd.read_csv(shards[1] / "index.csv", dtype={"subject_id": str})
    index.loc[0, "row"] = 99
    index.to_csv(shards[1] / "index.csv", index=False)
    with pytest.raises(CacheDamagedError, match=r"shard1/index.csv: 1 row number\(s\) outside the arrays' 0..5"):
        merge_caches(shards, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_merge_refuses_a_subject_in_two_shards(shards, tmp_path):
    first = pd.read_csv(shards[0] / "index.csv", dtype={"subject_id": str})
    second = pd.read_csv(shards[1] / "index.csv", dtype={"subject_id": str})
    second.loc[0, "subject_id"] = first.subject_id[0]
    second.to_csv(shards[1] / "index.csv", index=False)
    with pytest.raises(CacheDamagedError, match=f"subject '{first.subject_id[0]}' is in .*shard0 and in .*shard1"):
        merge_caches(shards, tmp_path / "merged")


def test_merge_refuses_a_shard_with_a_truncated_array(shards, tmp_path):
    data = (shards[0] / "cmr.npy").read_bytes()
    (shards[0] / "cmr.npy").write_bytes(data[: len(data) // 2])  # a partly copied shard
    with pytest.raises(CacheDamagedError, match=r"shard0/cmr.npy: not a readable array"):
        merge_caches(shards, tmp_path / "merged")


# --- Cache.open: index and arrays agree ---------------------------------------------------------------------------

@pytest.fixture
def cache_copy(built_shards, tmp_path):
    folder = tmp_path / "cache"
    shutil.copytree(built_shards / "shard0", folder)
    return folder


def test_a_good_cache_still_opens(cache_copy, tiny_cache):
    assert len(Cache.open(cache_copy).index) == 6 and len(Cache.open(tiny_cache).index) > 0


@pytest.mark.parametrize("damage, message", [
    ("truncated ecg.npy", r"cache/ecg.npy: not a readable array"),
    ("missing cmr.npy", r"cache/cmr.npy: missing; the cache is incomplete"),
    ("short cmr.npy", r"cache/cmr.npy: holds float16 \(5, 20, 32, 32\), but cache.json describes float16 \(6, 20, 32, 32\)"),
    ("row beyond the arrays", r"cache/index.csv: 1 row number\(s\) outside the arrays' 0..5"),
    ("subject twice", r"cache/index.csv: subject\(s\) listed twice"),
    ("row twice", r"cache/index.csv: array row\(s\) \[0\] given to two subjects"),
    ("index cut mid-row", r"cache/index.csv: "),
])
def test_a_damaged_or_partly_copied_cache_is_refused_naming_the_file(cache_copy, damage, message):
    index_path = cache_copy / "index.csv"
    index = pd.read_csv(index_path, dtype={"subject_id": str})
    if damage == "truncated ecg.npy":
        data = (cache_copy / "ecg.npy").read_bytes()
        (cache_copy / "ecg.npy").write_bytes(data[:1000])
    elif damage == "missing cmr.npy":
        (cache_copy / "cmr.npy").unlink()
    elif damage == "short cmr.npy":
        np.save(cache_copy / "cmr.npy", np.load(cache_copy / "cmr.npy")[:5])
    elif damage == "row beyond the arrays":
        index.loc[2, "row"] = 6
        index.to_csv(index_path, index=False)
    elif damage == "subject twice":
        index.loc[1, "subject_id"] = index.subject_id[0]
        index.to_csv(index_path, index=False)
    elif damage == "row twice":
        index.loc[1, "row"] = index.row[0]
        index.to_csv(index_path, index=False)
    elif damage == "index cut mid-row":
        text = index_path.read_text()
        index_path.write_text(text[: text.index("\n", text.index("\n") + 1) + 5])
    with pytest.raises(CacheDamagedError, match=message):
        Cache.open(cache_copy)


# --- preprocess --out: no links, no file ---------------------------------------------------------------------------

def test_preprocess_refuses_an_out_folder_that_is_or_holds_a_link(small_cohort, tmp_path, capsys):
    victim = tmp_path / "victim.csv"
    victim.write_text("someone's table\n")
    resumed = tmp_path / "resumed"
    build_cache(small_cohort, resumed, FAST, progress=False, stop_after=2)
    (resumed / "index.csv").unlink(missing_ok=True)
    (resumed / "index.csv").symlink_to(victim)
    status, err = _one_line(capsys, "preprocess", "--cohort", small_cohort, "--out", resumed, "--workers", "1")
    assert status == 2 and "holds symbolic links" in err and "index.csv" in err
    assert victim.read_text() == "someone's table\n"

    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real, target_is_directory=True)
    status, err = _one_line(capsys, "preprocess", "--cohort", small_cohort, "--out", tmp_path / "alias", "--workers", "1")
    assert status == 2 and "is a symbolic link" in err and str(real) in err and not any(real.iterdir())

    (tmp_path / "a_file").write_text("x")
    status, err = _one_line(capsys, "preprocess", "--cohort", small_cohort, "--out", tmp_path / "a_file", "--workers", "1")
    assert status == 2 and "is a file" in err and (tmp_path / "a_file").read_text() == "x"


def test_a_killed_builds_temporary_does_not_make_the_folder_foreign(small_cohort, tmp_path):
    out = tmp_path / "cache"
    out.mkdir()
    (out / ".cache.json.123.0123abcd.tmp").write_text("{")  # a kill between writing cache.json and moving it
    assert build_cache(small_cohort, out, FAST, progress=False)["complete"]


def test_synth_and_build_manifest_refuse_links(tmp_path, capsys):
    victim = tmp_path / "victim.csv"
    victim.write_text("keep\n")
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    (cohort / "manifest.csv").symlink_to(victim)
    status, err = _one_line(capsys, "build-manifest", "--cohort", cohort)
    assert status == 2 and "symbolic link" in err and victim.read_text() == "keep\n"
    status, err = _one_line(capsys, "synth", "--out", cohort, "--n", "2", "--workers", "1")
    assert status == 2 and "holds symbolic links" in err and victim.read_text() == "keep\n"


# --- a full disk --------------------------------------------------------------------------------------------------

def _file_size_limit(limit: int):
    """preexec_fn: writes past ``limit`` bytes per file fail with EFBIG (SIGXFSZ ignored) in the child."""
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def _kit(*argv, limit: int | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ptacl_core", *map(str, argv)], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=_file_size_limit(limit) if limit else None)


def test_preprocess_on_a_full_small_filesystem_is_one_error_not_a_sigbus(small_cohort, tmp_path):
    """A 1 MB tmpfs (mounted in a user and mount namespace of its own) for a 2 MB cache: the old build created
    sparse arrays and died by SIGBUS writing them, its workers orphaned."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) to mount a small tmpfs")
    mount = tmp_path / "small_disk"
    mount.mkdir()
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            f"mount -t tmpfs -o size=1m tmpfs {mount}"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {probe.stderr.strip()[:200]}")
    script = (f"mount -t tmpfs -o size=1m tmpfs {mount} || exit 99; {sys.executable} -m ptacl_core preprocess "
              f"--cohort {small_cohort} --out {mount}/cache --preset tiny --workers 1; rc=$?; ls -a {mount} >&2; exit $rc")
    result = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "--fork", "sh", "-c", script],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error (preprocess)")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "disk full writing the cache arrays of 12 subjects" in errors[0] and "bytes needed" in errors[0]


def test_preprocess_under_a_file_size_limit_is_one_error_and_leaves_nothing(small_cohort, tmp_path):
    result = _kit("preprocess", "--cohort", small_cohort, "--out", tmp_path / "cache", "--preset", "tiny",
                  "--workers", "1", limit=200_000)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "disk full writing the cache arrays" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "cache").exists()  # the arrays it could not reserve are removed, and their folder


def test_a_full_disk_while_writing_the_index_keeps_the_previous_tables(small_cohort, tmp_path):
    out = tmp_path / "cache"
    build_cache(small_cohort, out, PreprocessConfig.preset("tiny"), progress=False)
    before = _digests(out)
    assert (out / "index.csv").stat().st_size > 2000
    # a rerun of a complete cache rewrites its tables: under a 2000-byte file-size limit index.csv cannot be written
    result = _kit("preprocess", "--cohort", small_cohort, "--out", out, "--preset", "tiny", "--workers", "1",
                  limit=2000)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "index.csv" in result.stderr and "disk full" in result.stderr and "Traceback" not in result.stderr
    assert _digests(out) == before  # not truncated; no temporary left beside it
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def test_a_full_disk_during_a_checkpoint_keeps_the_last_one_and_leaves_no_temporary(tmp_path, monkeypatch):
    save_checkpoint({"epoch": 0, "w": torch.zeros(3)}, tmp_path)
    before = (tmp_path / "checkpoints/last.pt").read_bytes()

    def full(state, handle):
        handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runs_module.torch, "save", full)
    with pytest.raises(paths.DiskFullError, match=r"checkpoints: disk full writing last.pt"):
        save_checkpoint({"epoch": 1, "w": torch.ones(3)}, tmp_path)
    assert (tmp_path / "checkpoints/last.pt").read_bytes() == before
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["last.pt"]


def _train_args(cache, runs, name, epochs):
    return ["train", f"cache={cache}", f"runs_dir={runs}", f"name={name}", f"optim.epochs={epochs}",
            "optim.batch_size=8", "--no-progress"]


def test_train_under_a_file_size_limit_is_one_error_and_keeps_the_last_checkpoint(tiny_cache, tmp_path):
    train(TrainConfig(cache=str(tiny_cache), runs_dir=str(tmp_path), name="r").with_overrides(
        ["optim.epochs=2", "optim.batch_size=8"]), progress=False, stop_after_epochs=1)
    checkpoint = tmp_path / "r/checkpoints/last.pt"
    before = checkpoint.read_bytes()
    result = _kit(*_train_args(tiny_cache, tmp_path, "r", 2), limit=len(before) // 2)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "disk full writing last.pt" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert checkpoint.read_bytes() == before and [p.name for p in checkpoint.parent.iterdir()] == ["last.pt"]
    # its epoch-2 row was written before the checkpoint failed: the resume cuts it and writes it again, once
    assert len((tmp_path / "r/metrics.csv").read_text().splitlines()) == 3
    assert _kit(*_train_args(tiny_cache, tmp_path, "r", 2)).returncode == 0
    assert [int(line.split(",")[0]) for line in (tmp_path / "r/metrics.csv").read_text().splitlines()[1:]] == [1, 2]


# --- runs: names, locks, temporaries, metrics consistent with the checkpoint -----------------------------------------

@pytest.mark.parametrize("name", ["../../x", "..", ".", "a/b", "/tmp/x", "a\\b", "a\x00b", "a\nb", "", "  "])
def test_a_run_name_is_a_name_not_a_path(name):
    with pytest.raises(ValueError, match="a run name is one folder name, not a path"):
        check_run_name(name)


@pytest.mark.parametrize("name", ["ptacl_tiny_seed0", "my run", "x..y", "über-run.v2"])
def test_ordinary_run_names_pass(name):
    assert check_run_name(name) == name


def test_train_refuses_a_name_that_climbs_out_of_the_runs_folder(tiny_cache, tmp_path, capsys):
    runs = tmp_path / "a/b/runs"
    runs.mkdir(parents=True)
    status, err = _one_line(capsys, *_train_args(tiny_cache, runs, "../../x", 1))
    assert status == 2 and "name" in err and "../../x" in err
    assert not (tmp_path / "a/x").exists() and not any(runs.iterdir())
    status, err = _one_line(capsys, *_train_args(tiny_cache, runs, tmp_path / "abs", 1))
    assert status == 2 and not (tmp_path / "abs").exists()


def _hold_lock(folder: Path) -> subprocess.Popen:
    """Another process holding the run's lock until its stdin closes."""
    code = ("import sys; from pathlib import Path; from ptacl_core.training.runs import lock_run; "
            "lock = lock_run(Path(sys.argv[1])); print('locked', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_writer_of_a_run_gets_one_line_naming_the_holder(tiny_cache, tmp_path, capsys):
    holder = _hold_lock(tmp_path / "r")
    try:
        status, err = _one_line(capsys, *_train_args(tiny_cache, tmp_path, "r", 1))
        assert status == 2 and "being written by another process" in err and f"pid {holder.pid} on " in err
        assert not (tmp_path / "r/metrics.csv").exists() and not (tmp_path / "r/checkpoints").exists()
    finally:
        holder.stdin.close()
        holder.wait(60)
    # the holder is gone (its lock went with it): the run trains
    assert main(_train_args(tiny_cache, tmp_path, "r", 1)) == 0
    assert (tmp_path / "r/checkpoints/last.pt").exists()


def test_the_lock_is_reentrant_in_a_process_and_released_with_it(tmp_path):
    lock = lock_run(tmp_path / "r")
    assert lock_run(tmp_path / "r") is lock  # a notebook training the same run again
    assert f"pid {os.getpid()} on " in (tmp_path / "r/.lock").read_text()
    code = "import sys; from pathlib import Path; from ptacl_core.training.runs import lock_run; lock_run(Path(sys.argv[1]))"
    busy = subprocess.run([sys.executable, "-c", code, str(tmp_path / "r")], capture_output=True, text=True, timeout=120)
    assert busy.returncode != 0 and "RunBusyError" in busy.stderr
    lock.release()
    free = subprocess.run([sys.executable, "-c", code, str(tmp_path / "r")], capture_output=True, text=True, timeout=120)
    assert free.returncode == 0, free.stderr[-2000:]


def test_a_run_folder_that_is_or_holds_a_link_is_refused(tmp_path):
    victim = tmp_path / "victim.csv"
    victim.write_text("keep\n")
    (tmp_path / "runs/r").mkdir(parents=True)
    (tmp_path / "runs/r/metrics.csv").symlink_to(victim)
    with pytest.raises(ValueError, match="holds symbolic links"):
        lock_run(tmp_path / "runs/r")
    (tmp_path / "runs/alias").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(ValueError, match="is a symbolic link"):
        lock_run(tmp_path / "runs/alias")
    assert victim.read_text() == "keep\n" and not (tmp_path / "elsewhere").exists()


def test_temporaries_have_unique_names_and_stale_ones_are_removed(tmp_path):
    names = {paths.temporary_path(tmp_path / "last.pt").name for _ in range(50)}
    assert len(names) == 50 and all(f".last.pt.{os.getpid()}." in n and paths.is_temporary(n) for n in names)
    checkpoints = tmp_path / "r/checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "last.tmp").write_bytes(b"left by a kill (old name)")
    (checkpoints / ".last.pt.999.0123abcd.tmp").write_bytes(b"left by a kill")
    (checkpoints / "last.pt").write_bytes(b"the good one")
    lock_run(tmp_path / "r").release()
    assert [p.name for p in checkpoints.iterdir()] == ["last.pt"]


def test_a_kill_between_the_metrics_row_and_the_checkpoint_does_not_duplicate_the_row(tiny_cache, tmp_path):
    def config(name):
        return TrainConfig(cache=str(tiny_cache), runs_dir=str(tmp_path), name=name).with_overrides(
            ["optim.epochs=2", "optim.batch_size=8"])

    whole = train(config("whole"), progress=False)
    killed = train(config("killed"), progress=False, stop_after_epochs=1)  # checkpoint of epoch 1 (index 0)
    metrics = killed / "metrics.csv"
    header, first = metrics.read_text().splitlines(keepends=True)
    # the kill: epoch 2's row is written, its checkpoint is not; and a third row cut mid-write
    metrics.write_text(header + first + first.replace("1,", "2,", 1) + "3,0.5")
    train(config("killed"), progress=False)
    lines = metrics.read_text().splitlines(keepends=True)
    assert lines[:2] == [header, first]  # the kept row byte for byte
    assert [int(line.split(",")[0]) for line in lines[1:]] == [1, 2]
    assert len(lines) == len((whole / "metrics.csv").read_text().splitlines())
    seconds = pd.read_csv(metrics).seconds
    assert seconds.notna().all() and len(seconds) == 2  # the summary's time counts each epoch once


def test_truncate_metrics_keeps_the_checkpoints_epochs(tmp_path):
    (tmp_path / "metrics.csv").write_text("epoch,loss\n1,0.5\n2,0.4\n3,0.3\n")
    assert truncate_metrics(tmp_path, 3) == 0 and (tmp_path / "metrics.csv").read_text().endswith("3,0.3\n")
    assert truncate_metrics(tmp_path, 1) == 2 and (tmp_path / "metrics.csv").read_text() == "epoch,loss\n1,0.5\n"
    assert truncate_metrics(tmp_path, 0) == 1 and not (tmp_path / "metrics.csv").exists()  # no checkpoint: no rows
    (tmp_path / "metrics.csv").write_text("epoch,lo")  # a header cut by a kill
    truncate_metrics(tmp_path, 0)
    assert not (tmp_path / "metrics.csv").exists()


def test_a_busy_run_is_refused_before_its_metrics_are_touched(tiny_cache, tmp_path):
    train(TrainConfig(cache=str(tiny_cache), runs_dir=str(tmp_path), name="r").with_overrides(
        ["optim.epochs=1", "optim.batch_size=8"]), progress=False)
    before = _digests(tmp_path / "r")
    holder = _hold_lock(tmp_path / "r")
    try:
        with pytest.raises(RunBusyError, match=f"pid {holder.pid}"):
            train(TrainConfig(cache=str(tiny_cache), runs_dir=str(tmp_path), name="r").with_overrides(
                ["optim.epochs=2", "optim.batch_size=8"]), progress=False)
    finally:
        holder.stdin.close()
        holder.wait(60)
    after = _digests(tmp_path / "r")
    assert {k: v for k, v in after.items() if k != ".lock"} == {k: v for k, v in before.items() if k != ".lock"}


def test_a_disk_full_error_no_writer_named_is_one_line_too(tmp_path, capsys, monkeypatch):
    import ptacl_core.__main__ as cli

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.csv"))

    monkeypatch.setattr(cli, "build_manifest", full)
    status, err = _one_line(capsys, "build-manifest", "--cohort", tmp_path)
    assert status == 2 and "x.csv: disk full (No space left on device)" in err
