"""Retrieval: chunked top-k equals the full computation; metrics on constructed cases with known answers."""

import numpy as np
import pytest
import torch

from ptacl_core.evaluation.retrieval import full_topk, relevant_sets, score_retrieval, topk, zscore_phenotypes


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("chunks", [(7, 13), (1, 1000), (1000, 5)])
def test_chunked_topk_equals_full_topk(metric, chunks):
    rng = np.random.default_rng(0)
    queries, gallery = rng.normal(size=(60, 16)), rng.normal(size=(200, 16))
    exclude = np.where(np.arange(60) % 3 == 0, np.arange(60), -1)  # some queries have an own entry to skip
    rows, scores = topk(queries, gallery, 10, exclude, metric, query_chunk=chunks[0], gallery_chunk=chunks[1], dtype=torch.float64)
    full_rows, full_scores = full_topk(queries, gallery, 10, exclude, metric)
    np.testing.assert_array_equal(rows, full_rows)
    np.testing.assert_allclose(scores, full_scores, rtol=1e-10, atol=1e-10)
    assert not (rows == exclude[:, None]).any()


def test_float32_chunked_topk_agrees_with_full_up_to_near_ties():
    rng = np.random.default_rng(1)
    queries, gallery = rng.normal(size=(100, 32)).astype(np.float32), rng.normal(size=(5000, 32)).astype(np.float32)
    rows, scores = topk(queries, gallery, 10, gallery_chunk=333)
    full_rows, full_scores = full_topk(queries, gallery, 10)
    np.testing.assert_allclose(scores, full_scores, atol=1e-5)
    assert (rows == full_rows).mean() > 0.99


def test_topk_rejects_bad_input():
    with pytest.raises(ValueError, match="k = 11"):
        topk(np.ones((2, 3)), np.ones((11, 3)), 11, exclude=np.array([0, 1]))
    with pytest.raises(ValueError, match="dimensions"):
        topk(np.ones((2, 3)), np.ones((5, 4)), 1)
    with pytest.raises(ValueError, match="metric"):
        topk(np.ones((2, 3)), np.ones((5, 3)), 1, metric="dot")
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        topk(np.ones(3), np.ones((5, 3)), 1)


def test_zscores_use_the_reference_rows_and_neutralise_unknowns():
    reference = np.array([[1.0, 10.0], [3.0, 30.0]])
    z = zscore_phenotypes(np.array([[2.0, np.nan], [4.0, 40.0]]), reference)
    np.testing.assert_allclose(z, [[0.0, 0.0], [2.0, 2.0]])


def test_relevant_sets_are_the_nearest_in_phenotype_space():
    z = np.arange(30, dtype=float)[:, None]  # subjects on a line: neighbours are known exactly
    relevant = relevant_sets(z, z, exclude=np.arange(30), n_relevant=4)
    assert set(relevant[10]) == {8, 9, 11, 12} and set(relevant[0]) == {1, 2, 3, 4}


def test_perfect_and_reversed_retrieval_on_a_line():
    n = 40
    z = np.linspace(-2, 2, n)[:, None]
    lvef = 60 + 10 * z[:, 0]
    own = np.arange(n)
    order = np.argsort(np.abs(z[:, 0][:, None] - z[:, 0][None, :]), axis=1, kind="stable")
    perfect = np.stack([row[row != q][:10] for q, row in enumerate(order)])
    worst = np.argsort(-np.abs(z[:, 0][:, None] - z[:, 0][None, :]), axis=1, kind="stable")[:, :10]
    good = score_retrieval(perfect, z, z, lvef, lvef, exclude=own).means()
    bad = score_retrieval(worst, z, z, lvef, lvef, exclude=own).means()
    assert good["precision@1"] == 1.0 and good["precision@10"] == 1.0
    assert bad["precision@10"] == 0.0
    assert good["zdist@5"] < good["zdist_random"] < bad["zdist@5"]
    assert good["lvef_error@1"] < good["lvef_error_random@1"] < bad["lvef_error@1"]


def test_metric_values_by_hand():
    # 1 query at phenotype 0 and LVEF 50; gallery at 0.1 (LVEF 52), 5 (LVEF 80), 0.2 (LVEF 47), 9 (LVEF 20)
    query_z, gallery_z = np.array([[0.0]]), np.array([[0.1], [5.0], [0.2], [9.0]])
    retrieved = np.array([[1, 0, 2, 3]])
    scores = score_retrieval(retrieved, query_z, gallery_z, np.array([50.0]), np.array([52.0, 80.0, 47.0, 20.0]),
                             ks=(1, 2, 3), n_relevant=2, n_random=4000, seed=0, identification=(retrieved, np.array([1])))
    s = {k: v[0] for k, v in scores.per_query.items()}
    # relevant = the 2 nearest in phenotype space: gallery rows 0 and 2
    assert s["precision@1"] == 0.0 and s["precision@2"] == 0.5 and s["precision@3"] == pytest.approx(2 / 3)
    assert s["zdist@1"] == pytest.approx(5.0) and s["zdist@2"] == pytest.approx(2.55)
    assert s["zdist_random"] == pytest.approx((0.1 + 5 + 0.2 + 9) / 4)
    assert s["lvef_error@1"] == pytest.approx(30.0) and s["lvef_error@2"] == pytest.approx(16.0)
    assert s["lvef_error@3"] == pytest.approx(abs((80 + 52 + 47) / 3 - 50))
    # random expectation of the top-1 error: mean |x - 50| over the four = (2 + 30 + 3 + 30) / 4
    assert s["lvef_error_random@1"] == pytest.approx(16.25, rel=0.05)
    assert s["recall@1"] == 1.0 and s["recall@2"] == 1.0 and s["recall_chance@2"] == pytest.approx(0.5)
    assert s["precision_chance@1"] == pytest.approx(2 / 4)  # 2 relevant among 4 candidates
    assert s["zdist_gain@1"] == pytest.approx(s["zdist_random"] - 5.0)


def test_retrieval_over_methods_excludes_self_and_identifies_the_own_cmr():
    from ptacl_core.evaluation.comparison import CohortView, retrieval_per_query
    from ptacl_core.phenotypes import PHENOTYPES

    rng = np.random.default_rng(3)
    n = 120
    phenotypes = rng.normal(size=(n, len(PHENOTYPES))) * 10 + 60
    splits = np.array(["train"] * 60 + ["test"] * 60)
    phenotypes[60:] += 5.0  # a shifted test split: z-scores must use the training statistics
    view = CohortView(None, np.array([f"s{i}" for i in range(n)]), splits, phenotypes, np.full(n, "normal"))
    ecg = phenotypes + rng.normal(size=phenotypes.shape)  # an embedding that knows the phenotypes
    results = retrieval_per_query(view, {("ptacl", 0): ecg}, {("ptacl", 0): (ecg, ecg)})
    to_ecg, to_cmr = results[("ptacl", 0, "ECG→ECG")].per_query, results[("ptacl", 0, "ECG→CMR")].per_query
    assert to_cmr["recall@1"].mean() == 1.0 and to_cmr["recall_chance@1"][0] == pytest.approx(1 / 60)
    # with the own CMR left out, similar-patient search over identical embeddings equals the ECG->ECG search
    np.testing.assert_array_equal(to_ecg["precision@10"], to_cmr["precision@10"])
    assert to_ecg["precision@10"].mean() > 0.3 > to_ecg["precision_chance@10"][0]
    train, test = phenotypes[:60], phenotypes[60:]
    z = (test - train.mean(0)) / train.std(0)
    random_distance = np.sqrt(((z[:, None] - z[None]) ** 2).sum(-1)).sum(1) / 59
    np.testing.assert_allclose(to_ecg["zdist_random"], random_distance)
