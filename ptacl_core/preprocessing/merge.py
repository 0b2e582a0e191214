"""Merging the shard caches of a cluster build (``--shard I/N``) into one cache (``python -m ptacl_core merge-cache``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ptacl_core.io.csv_cells import read_kit_csv, write_csv
from ptacl_core.preprocessing.cache import (
    DESCRIPTION_FILE,
    CacheMismatchError,
    is_cache,
    open_arrays,
    read_description,
    write_description,
)
from ptacl_core.preprocessing.config import PreprocessConfig


def merge_caches(shard_dirs: list[Path | str], out: Path | str) -> dict:
    """Merge shard caches (``--shard I/N``) into one; every shard must carry the same fingerprint."""
    shard_dirs = [Path(d) for d in shard_dirs]
    descriptions = []
    for folder in shard_dirs:
        if not is_cache(folder):
            raise CacheMismatchError(f"{folder}: not a cache (no {DESCRIPTION_FILE})")
        descriptions.append(read_description(folder))
    fingerprints = {d["fingerprint"] for d in descriptions}
    if len(fingerprints) > 1:
        raise CacheMismatchError(f"shards were built from different manifests/configs: {sorted(fingerprints)}")
    shards = sorted((tuple(d["shard"] or (0, 1)), folder) for d, folder in zip(descriptions, shard_dirs, strict=True))
    counts = {s[0][1] for s in shards}
    indices = [s[0][0] for s in shards]
    if len(counts) != 1 or sorted(indices) != list(range(counts.pop())):
        raise CacheMismatchError(f"shards {[list(s[0]) for s in shards]} do not cover I/N for I = 0..N-1 exactly once")
    incomplete = [str(folder) for d, folder in zip(descriptions, shard_dirs, strict=True) if not d.get("complete")]
    if incomplete:
        raise CacheMismatchError(f"shard(s) not finished (run them again to resume): {incomplete}")
    config = PreprocessConfig.from_dict(descriptions[0]["config"])
    indexes = [read_kit_csv(folder / "index.csv") for _, folder in shards]
    all_subjects = sorted(
        set().union(*(set(i.subject_id) for i in indexes))
        | set().union(*(set(read_kit_csv(folder / "failures.csv").subject_id) for _, folder in shards))
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    total = sum(d["n_subjects"] for d in descriptions)
    ecg_out, cmr_out = open_arrays(out, total, config, create=True)
    merged_rows, merged_failures = [], []
    global_row = {subject: position for position, subject in enumerate(all_subjects)}
    for (_, folder), index in zip(shards, indexes, strict=True):
        ecg_in = np.load(folder / "ecg.npy", mmap_mode="r")
        cmr_in = np.load(folder / "cmr.npy", mmap_mode="r")
        for record in index.to_dict("records"):
            position = global_row[record["subject_id"]]
            ecg_out[position] = ecg_in[record["row"]]
            cmr_out[position] = cmr_in[record["row"]]
            merged_rows.append({**record, "row": position})
        merged_failures.extend(read_kit_csv(folder / "failures.csv").to_dict("records"))
    ecg_out.flush()
    cmr_out.flush()
    write_csv(pd.DataFrame(merged_rows).sort_values("subject_id"), out / "index.csv", index=False)
    write_csv(pd.DataFrame(merged_failures, columns=["subject_id", "stage", "reason"]).sort_values("subject_id"),
              out / "failures.csv", index=False)
    description = {**descriptions[0], "n_subjects": total, "shard": None, "complete": True, "merged_from": [str(f) for _, f in shards]}
    write_description(out, description)
    return {"out": str(out), "n_cached": len(merged_rows), "n_failed": len(merged_failures)}
