"""Model bundles (``export``, ``predict --bundle``), their ONNX graph, and release hygiene."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from ptacl_core import paths
from ptacl_core.evaluation.probing import fit_ridge
from ptacl_core.prediction import PredictionError, Predictor
from ptacl_core.prediction.bundle import CARD, CONFIG, ONNX, WEIGHTS, export_bundle
from ptacl_core.prediction.heads import LinearHead
from ptacl_core.prediction.onnx_graph import OnnxEmbedder, export_onnx
from ptacl_core.prediction.release import ReleaseError, check_release, id_pattern, ids_found
from ptacl_core.training.runs import random_init_model

RUN = "ptacl_tiny_seed0"


@pytest.fixture(scope="module")
def bundle(trained_runs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundles") / "ptacl_tiny"
    export_bundle(trained_runs / RUN, folder, store=tmp_path_factory.mktemp("store"))
    return folder


@pytest.fixture(scope="module")
def hospital_ecgs(realdata):
    ecg = realdata / "ecg"
    return [ecg / "ukb_xml/ukbb_scrubbed.xml", ecg / "muse_xml/muse_ecg1.xml", ecg / "wfdb/ptbxl/00001_lr.hea",
            ecg / "wfdb/cinc2021/E07500.mat", ecg / "wfdb/ptb/s0010_re.hea"]


def test_linear_head_equals_the_fitted_pipeline():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)) * rng.uniform(0.1, 10, size=6) + rng.normal(size=6)
    y = x @ rng.normal(size=6) + rng.normal(size=40)
    pipeline = fit_ridge(x, y)
    head = LinearHead.from_pipeline(pipeline)
    queries = rng.normal(size=(7, 6))
    reference = [sum((q[j] - head.mean[j]) / head.scale[j] * head.coef[j] for j in range(6)) + float(head.intercept)
                 for q in queries]  # the formula, one term at a time
    np.testing.assert_allclose(head.predict(queries), reference, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(head.predict(queries), pipeline.predict(queries), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="scale must be positive"):
        LinearHead.from_arrays({**head.arrays(), "scale": -head.scale}, 6, "x")
    with pytest.raises(ValueError, match=r"coef has shape \(5,\)"):
        LinearHead.from_arrays({**head.arrays(), "coef": head.coef[:5]}, 6, "x")


def test_bundle_files_and_model_card(bundle):
    assert sorted(p.name for p in bundle.iterdir()) == sorted([CARD, CONFIG, ONNX, WEIGHTS])
    raw = (bundle / WEIGHTS).read_bytes()  # safetensors: 8-byte header length, a JSON header, raw tensor bytes
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    assert {"ecg_encoder.patch_embed.weight", "heads.LVEF_pct.coef", "novelty.precision"} <= set(header)
    assert header["heads.LVEF_pct.coef"]["dtype"] == "F64" and header["ecg_encoder.patch_embed.weight"]["dtype"] == "F32"
    config = json.loads((bundle / CONFIG).read_text())
    assert config["training"]["synthetic"] and config["training"]["run"] == RUN
    assert config["input"]["fs_hz"] == 250 and config["input"]["n_samples"] == 2500
    assert "/" not in json.dumps(config["training"])  # names, never paths
    entry = config["phenotypes"]["LVEF_pct"]
    low, high = entry["test_r2_interval"]
    assert low <= entry["test_r2"] <= high and entry["interval_halfwidth"] > 0
    card = (bundle / CARD).read_text()
    assert card.startswith("---\nlicense:") and "DEMONSTRATION ONLY" in card and "| LVEF_pct | % |" in card
    assert "community.ukbiobank.ac.uk" in card and "Intended use" in card and "limitations" in card.lower()


def test_predict_bundle_reproduces_predict_run(trained_runs, bundle, cohort, hospital_ecgs, tmp_path):
    manifest = pd.read_csv(cohort / "manifest.csv", dtype=str)
    files = [*hospital_ecgs, *(cohort / path for path in manifest[manifest.split == "test"].ecg[:4])]
    from_run = Predictor.from_run(trained_runs / RUN, store=tmp_path)
    from_bundle = Predictor.from_bundle(bundle)
    expected, neighbours = from_run.predict(files, top=2)
    got, none = from_bundle.predict(files, top=2)
    assert (expected.status == "ok").all() and len(neighbours) == 2 * len(files) and none.empty
    pd.testing.assert_frame_equal(got, expected, check_exact=True)  # bit for bit
    pd.testing.assert_frame_equal(from_bundle.test_errors, from_run.test_errors, check_exact=True)
    assert from_bundle.halfwidths == from_run.halfwidths and from_bundle.synthetic


def test_onnx_graph_matches_pytorch_on_real_ecgs(bundle, hospital_ecgs):
    torch_path, onnx_path = Predictor.from_bundle(bundle), Predictor.from_bundle(bundle, onnx=True)
    ecgs = np.concatenate([torch_path.preprocessed(path)[0] for path in hospital_ecgs])
    reference = torch_path.embed(ecgs)
    heads = np.stack([head.predict(reference) for head in torch_path.heads.values()], axis=1)
    embedding, phenotypes = onnx_path.embed.run(ecgs)
    embedding_error, phenotype_error = np.abs(embedding - reference).max(), np.abs(phenotypes - heads).max()
    print(f"ONNX vs PyTorch on {len(ecgs)} real ECGs: embedding {embedding_error:.2g}, phenotypes {phenotype_error:.2g}")
    assert embedding_error < 1e-4 and phenotype_error < 1e-2  # float32 encoder; phenotypes in mL, %, g
    config = json.loads((bundle / CONFIG).read_text())
    assert config["onnx"]["max_abs_difference"]["embedding"] < 1e-4  # measured at export, on validation ECGs
    predictions, _ = onnx_path.predict(hospital_ecgs)
    expected, _ = torch_path.predict(hospital_ecgs)
    np.testing.assert_allclose(predictions.LVEF_pct, expected.LVEF_pct, atol=1e-2)


def test_onnx_export_of_the_resnet_encoder(tmp_path):
    encoder = random_init_model("tiny_resnet", 0).ecg_encoder.eval()
    rng = np.random.default_rng(0)
    head = LinearHead(rng.normal(size=64), rng.uniform(0.5, 2, size=64), rng.normal(size=64), np.array(3.0))
    export_onnx(encoder, {"LVEF_pct": head}, 2500, tmp_path / "m.onnx", {})
    ecgs = rng.normal(scale=0.3, size=(3, 12, 2500)).astype(np.float32)
    with torch.no_grad():
        reference = encoder(torch.from_numpy(ecgs))[1].numpy()
    embedding, phenotypes = OnnxEmbedder(tmp_path / "m.onnx").run(ecgs)
    assert np.abs(embedding - reference).max() < 1e-4
    np.testing.assert_allclose(phenotypes[:, 0], head.predict(reference), atol=1e-3)


def test_onnx_example_needs_no_torch(bundle, hospital_ecgs, tmp_path):
    blocker = tmp_path / "no_torch" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch is blocked in this test')\n")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker.parent), str(paths.project_root())])}
    example = paths.project_root() / "examples" / "onnx_predict.py"
    result = subprocess.run([sys.executable, str(example), str(bundle), str(hospital_ecgs[1])], capture_output=True,
                            text=True, timeout=120, env=environment)
    assert result.returncode == 0, result.stderr[-2000:]
    printed = {line.split("\t")[1]: float(line.split("\t")[2]) for line in result.stdout.splitlines()}
    expected, _ = Predictor.from_bundle(bundle).predict([hospital_ecgs[1]])
    assert printed.keys() == set(Predictor.from_bundle(bundle).heads)
    for name, value in printed.items():
        assert abs(value - expected[name][0]) < 1e-2, name


def test_release_hygiene_matches_whole_tokens():
    pattern = id_pattern(["1234567", "SYN000003"])
    assert ids_found("run_1234567 and ptacl-SYN000003.json", pattern) == ["1234567", "SYN000003"]
    assert ids_found("12345678 0.1234567 SYN0000031 x1234567", pattern) == []
    assert ids_found("eid 1234567.", pattern) == ["1234567"]
    # short plain-number ids (a hospital cohort numbered 1..N) are looked for in names only, not in the kit's own text
    tensors = "ecg_encoder.blocks.1.attn.qkv.weight\necg_encoder.blocks.12.mlp.2.bias"
    check_release([str(i) for i in range(1, 200)], {"run name": "ptacl_tiny_seed0"},
                  {"tensor names": tensors, "config.json": "(batch, 12, n_samples)", "README.md": "n = 42 test subjects"})
    with pytest.raises(ReleaseError, match=r"run name: 42"):
        check_release(["42"], {"run name": "run_42"}, {})
    with pytest.raises(ReleaseError, match=r"README.md: 1234567"):
        check_release(["1234567"], {}, {"README.md": "participant 1234567"})


def test_the_onnx_graph_carries_no_paths_and_its_strings_are_checked(bundle):
    from ptacl_core.prediction.onnx_graph import onnx_strings

    raw = (bundle / ONNX).read_bytes()
    assert str(paths.project_root()).encode() not in raw and b"site-packages" not in raw  # no stack traces
    strings = onnx_strings(bundle / ONNX)
    assert any("LVEF_pct" in text for text in strings) and not any("/" in text for text in strings)
    with pytest.raises(ReleaseError, match="model.onnx"):
        check_release(["LVEF_pct"], {}, {"model.onnx": "\n".join(strings)})  # a name inside the graph is found


def test_export_refuses_a_bundle_carrying_a_participant_id(trained_runs, tiny_cache, tmp_path):
    from ptacl_core.preprocessing.cache import Cache

    participant = str(Cache.open(tiny_cache).index.subject_id.iloc[3])
    named = tmp_path / f"ptacl_{participant}"
    shutil.copytree(trained_runs / RUN, named)
    with pytest.raises(ReleaseError, match=participant):
        export_bundle(named, tmp_path / "bundle", store=tmp_path / "store", onnx=False)
    assert not (tmp_path / "bundle").exists()  # refused before anything is written
    with pytest.raises(ReleaseError, match="bundle folder name"):
        export_bundle(trained_runs / RUN, tmp_path / f"share_{participant}", store=tmp_path / "store", onnx=False)
    assert not (tmp_path / f"share_{participant}").exists()


def test_export_refuses_heads_fitted_on_another_cohort(trained_runs, tmp_path):
    moved = tmp_path / RUN
    shutil.copytree(trained_runs / RUN, moved)
    state = torch.load(moved / "checkpoints/last.pt", weights_only=True)
    state["data_fingerprint"] = "0" * 64  # trained on a cache other than the one it points at
    torch.save(state, moved / "checkpoints/last.pt")
    with pytest.raises(PredictionError, match="trained on another cache"):
        export_bundle(moved, tmp_path / "bundle", store=tmp_path / "store", onnx=False)
    assert not (tmp_path / "bundle").exists()


def test_bad_bundles_and_folders_are_refused(trained_runs, bundle, tmp_path):
    with pytest.raises(PredictionError, match="no config.json"):
        Predictor.from_bundle(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    config = json.loads((broken / CONFIG).read_text())
    (broken / CONFIG).write_text(json.dumps({**config, "bundle_version": 99}))
    with pytest.raises(PredictionError, match="bundle version 99"):
        Predictor.from_bundle(broken)
    config["ecg_encoder"]["dim"] = 32  # weights of another shape
    (broken / CONFIG).write_text(json.dumps(config))
    with pytest.raises(PredictionError, match="not a usable bundle"):
        Predictor.from_bundle(broken)
    shutil.copy(bundle / CONFIG, broken / CONFIG)
    (broken / WEIGHTS).write_bytes((bundle / WEIGHTS).read_bytes()[:1000])
    with pytest.raises(PredictionError, match="not a readable safetensors"):
        Predictor.from_bundle(broken)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(PredictionError, match="holds other files"):
        export_bundle(trained_runs / RUN, busy, onnx=False)
    assert (busy / "notes.txt").read_text() == "mine"


def test_cli_export_and_predict_bundle(trained_runs, bundle, realdata, tmp_path):
    def ptacl(*arguments):
        return subprocess.run([sys.executable, "-m", "ptacl_core", *map(str, arguments)], capture_output=True, text=True,
                              timeout=300, cwd=paths.project_root())

    ecg = realdata / "ecg/muse_xml/muse_ecg2.xml"
    exported = ptacl("export", "--run", trained_runs / RUN, "--out", tmp_path / "b", "--no-onnx")
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert "bundle written" in exported.stdout and not (tmp_path / "b" / ONNX).exists()
    result = ptacl("predict", "--bundle", tmp_path / "b", ecg, "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "DEMONSTRATION ONLY" in result.stdout and "no nearest patients" in result.stderr
    assert len(pd.read_csv(tmp_path / "out/predictions.csv")) == 1
    no_onnx = ptacl("predict", "--bundle", tmp_path / "b", "--onnx", ecg, "--out", tmp_path / "out")
    assert no_onnx.returncode == 2 and "exported with --no-onnx" in no_onnx.stderr
    both = ptacl("predict", "--bundle", bundle, "--run", trained_runs / RUN, ecg)
    assert both.returncode == 2 and "not both" in both.stderr
    onnx_alone = ptacl("predict", "--run", trained_runs / RUN, "--onnx", ecg)
    assert onnx_alone.returncode == 2 and "--onnx runs a bundle" in onnx_alone.stderr
