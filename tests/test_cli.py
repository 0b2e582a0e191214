"""The command line handles bad input the same way in every sub-command: one line naming the problem, exit 2,
no traceback."""

import subprocess
import sys

import pytest

from ptacl_core.__main__ import main


def _run(capsys, *argv):
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.err


def test_bad_cohort_table_is_one_line(tmp_path, capsys):
    (tmp_path / "manifest.csv").write_text("subject_id,ecg\n1,a.hea\n")
    status, err = _run(capsys, "preprocess", "--cohort", str(tmp_path), "--out", str(tmp_path / "cache"), "--workers", "1")
    assert status == 2 and err.startswith("error (preprocess):") and "manifest.csv" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_missing_manifest_is_one_line(tmp_path, capsys):
    status, err = _run(capsys, "build-manifest", "--cohort", str(tmp_path / "nowhere"))
    assert status == 2 and "error (build-manifest):" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("shard", ["3", "a/b", "4/4", "-1/2"])
def test_bad_shard_is_one_line(cohort, tmp_path, capsys, shard):
    status, err = _run(capsys, "preprocess", "--cohort", str(cohort), "--out", str(tmp_path / "c"), f"--shard={shard}")
    assert status == 2 and "--shard" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "c").exists()  # refused before anything was written


def test_cache_of_another_config_is_one_line(tiny_cache, cohort, capsys):
    status, err = _run(capsys, "preprocess", "--cohort", str(cohort), "--out", str(tiny_cache), "--preset", "default")
    assert status == 2 and "another manifest, preprocessing config" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("override, message", [("optim.epoch=3", "unknown config key"), ("optimiser.epochs=3", "unknown config section"),
                                               ("optim.epochs", "key=value"), ("optim.epochs=many", "expected an integer"),
                                               ("method=clip", "method must be one of")])
def test_bad_override_is_one_line(tmp_path, capsys, override, message):
    status, err = _run(capsys, "train", f"runs_dir={tmp_path}", override)
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_missing_cache_is_one_line(tmp_path, capsys):
    status, err = _run(capsys, "train", f"cache={tmp_path / 'no_cache'}", f"runs_dir={tmp_path}")
    assert status == 2 and "not a cache" in err


def test_merge_of_a_non_cache_is_one_line(tmp_path, capsys):
    status, err = _run(capsys, "merge-cache", "--out", str(tmp_path / "m"), str(tmp_path))
    assert status == 2 and "not a cache" in err


def test_workers_default_is_the_same_everywhere():
    from ptacl_core.__main__ import build_parser

    parser = build_parser()
    defaults = {command: parser.parse_args([command, "--out", "x", "--cohort", "y"] if command == "preprocess" else [command, "--out", "x"]).workers
                for command in ("synth", "preprocess")}
    assert len(set(defaults.values())) == 1


@pytest.mark.slow
def test_a_real_process_prints_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ptacl_core", "preprocess", "--cohort", str(tmp_path), "--out", str(tmp_path / "c")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "manifest.csv" in result.stderr


def test_zero_workers_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["synth", "--out", str(tmp_path), "--workers", "0"])
    assert "must be at least 1" in capsys.readouterr().err


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("PTACL_DEBUG", "1")
    with pytest.raises(ValueError, match="unknown config key"):
        main(["train", f"runs_dir={tmp_path}", "optim.epoch=3"])


def test_synth_writes_the_null_twin(tmp_path, capsys):
    import json

    status, _ = _run(capsys, "synth", "--out", str(tmp_path), "--n", "2", "--seed", "4", "--workers", "1", "--coupling", "none")
    assert status == 0 and json.loads((tmp_path / "cohort.json").read_text())["config"]["coupling"] == "none"
    with pytest.raises(SystemExit):
        main(["synth", "--out", str(tmp_path), "--coupling", "weak"])


@pytest.mark.parametrize("argv, message", [
    (["--profile", "encoders", "-p", "encoder_presets", "tiny,paper"], "different preprocessing"),
    (["--profile", "encoders", "-p", "encoder_presets", "tiny"], "two or more distinct"),
    (["--profile", "scaling", "--only", "05"], "nothing to run"),
    (["--profile", "scaling", "--no-twin", "--only", "07"], "--no-twin does not apply"),
    (["--profile", "scaling", "--only", "02,07", "-p", "runs_dir", "elsewhere"], "sets .*runs_dir.* itself"),
    (["--profile", "scaling", "--fast", "--only", "07"], "fast run caps"),
])
def test_the_scaling_and_encoders_profiles_refuse_a_plan_before_running_it(capsys, argv, message):
    import re

    status, err = _run(capsys, "run", *argv)
    assert status == 2 and err.startswith("error (run):") and re.search(message, err), err
    assert len(err.strip().splitlines()) == 1
