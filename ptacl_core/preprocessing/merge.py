"""Merging the shard caches of a cluster build (``--shard I/N``) into one cache (``python -m ptacl_core merge-cache``).

Everything is checked before anything is written: the output folder is not one of the shards, nor inside or around
one (it would be wiped before it was read), is no symbolic link and holds no links or other files, and holds no
other cache; each shard's index agrees with its arrays and no subject is in two shards (``check_shards``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ptacl_core import paths
from ptacl_core.io.csv_cells import read_kit_csv, write_csv
from ptacl_core.preprocessing.cache import (
    DESCRIPTION_FILE,
    CacheDamagedError,
    CacheMismatchError,
    check_arrays,
    check_index,
    foreign_files,
    is_cache,
    listed,
    load_array,
    open_arrays,
    read_description,
    write_description,
)
from ptacl_core.preprocessing.config import PreprocessConfig


def merge_caches(shard_dirs: list[Path | str], out: Path | str) -> dict:
    """Merge shard caches (``--shard I/N``) into one; every shard must carry the same fingerprint."""
    shard_dirs = [Path(d) for d in shard_dirs]
    out = Path(out)
    descriptions = []
    for folder in shard_dirs:
        if not is_cache(folder):
            raise CacheMismatchError(f"{folder}: not a cache (no {DESCRIPTION_FILE})")
        descriptions.append(read_description(folder))
    check_output_apart(out, shard_dirs)
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
    by_folder = {folder: d for d, folder in zip(descriptions, shard_dirs, strict=True)}
    indexes = [read_kit_csv(folder / "index.csv") for _, folder in shards]
    failures = [read_kit_csv(folder / "failures.csv") for _, folder in shards]
    arrays = [(load_array(folder / "ecg.npy"), load_array(folder / "cmr.npy")) for _, folder in shards]
    total = sum(d["n_subjects"] for d in descriptions)
    all_subjects = check_shards([folder for _, folder in shards], [by_folder[f] for _, f in shards], indexes, failures,
                                arrays, config, total)
    check_output_folder(out, fingerprints.pop())
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    if is_cache(out):  # a previous merge of these shards, rewritten: not complete until its tables are
        write_description(out, {**read_description(out), "complete": False})
    try:
        ecg_out, cmr_out = open_arrays(out, total, config, create=True)
    except paths.DiskFullError:
        if created:
            out.rmdir()  # nothing of ours is left in it
        raise
    merged_rows, merged_failures = [], []
    global_row = {subject: position for position, subject in enumerate(all_subjects)}
    for index, (ecg_in, cmr_in), failed in zip(indexes, arrays, failures, strict=True):
        for record in index.to_dict("records"):
            position = global_row[record["subject_id"]]
            ecg_out[position] = ecg_in[record["row"]]
            cmr_out[position] = cmr_in[record["row"]]
            merged_rows.append({**record, "row": position})
        merged_failures.extend(failed.to_dict("records"))
    ecg_out.flush()
    cmr_out.flush()
    with paths.written_atomically(out / "index.csv") as temporary:
        write_csv(pd.DataFrame(merged_rows).sort_values("subject_id"), temporary, index=False)
    with paths.written_atomically(out / "failures.csv") as temporary:
        write_csv(pd.DataFrame(merged_failures, columns=["subject_id", "stage", "reason"]).sort_values("subject_id"),
                  temporary, index=False)
    description = {**descriptions[0], "n_subjects": total, "shard": None, "complete": True, "merged_from": [str(f) for _, f in shards]}
    write_description(out, description)
    return {"out": str(out), "n_cached": len(merged_rows), "n_failed": len(merged_failures)}


def check_output_apart(out: Path, shard_dirs: list[Path]) -> None:
    """ValueError when ``out`` is one of the shards, lies inside one or holds one (links resolved): its arrays
    would be recreated, wiping a shard, before that shard is read."""
    target = Path(os.path.realpath(out))
    for folder in shard_dirs:
        shard = Path(os.path.realpath(folder))
        if target == shard or shard in target.parents or target in shard.parents:
            relation = "is" if target == shard else "lies inside" if shard in target.parents else "holds"
            raise ValueError(f"--out {out} {relation} the input shard {folder}: merging would overwrite the shard before "
                             "reading it; choose a new folder outside the shards")


def check_output_folder(out: Path, fingerprint: str) -> None:
    """ValueError unless ``out`` is new, empty, or a previous merge of the same build (the same fingerprint, or the
    leftovers of a merge killed before it wrote its description); never a link, a file, a folder holding links or
    other files, or another cache (a shard, or another build's cache)."""
    paths.refuse_links(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: is a file, not a folder; choose a new folder")
    if not out.is_dir():
        return
    foreign = foreign_files(out)
    if foreign:
        raise ValueError(f"--out {out}: the folder holds other files ({listed(foreign)}) and is not a merged cache; "
                         "choose an empty or new folder")
    if is_cache(out):
        existing = read_description(out)
        if existing.get("fingerprint") != fingerprint or existing.get("shard") is not None:
            what = f"shard {existing['shard']}" if existing.get("shard") is not None else "a cache of another build"
            raise CacheMismatchError(f"--out {out}: holds {what} (fingerprint {str(existing.get('fingerprint'))[:8]}); "
                                     "merging would overwrite it: choose an empty or new folder")


def check_shards(folders: list[Path], descriptions: list[dict], indexes: list[pd.DataFrame], failures: list[pd.DataFrame],
                 arrays: list[tuple[np.ndarray, np.ndarray]], config: PreprocessConfig, total: int) -> list[str]:
    """Each shard's arrays and index agree (``check_arrays``, ``check_index``), its failures list a subject once,
    no subject is in two shards, and the shards' subjects fill the merged arrays' ``total`` rows exactly. Returns
    every subject, sorted: the merged cache's row order. ``CacheDamagedError`` naming the shard's file otherwise."""
    seen: dict[str, Path] = {}
    for folder, description, index, failed, (ecg, cmr) in zip(folders, descriptions, indexes, failures, arrays, strict=True):
        check_arrays(folder, ecg, cmr, int(description["n_subjects"]), config)
        check_index(folder, index, len(ecg))
        if "subject_id" not in failed or failed.subject_id.duplicated().any():
            raise CacheDamagedError(f"{folder / 'failures.csv'}: no subject_id column, or a subject listed twice")
        for subject in (*index.subject_id, *failed.subject_id):
            if subject in seen:
                where = "twice in" if seen[subject] == folder else f"in {seen[subject]} and in"
                raise CacheDamagedError(f"subject {subject!r} is {where} {folder}: a subject belongs to one shard, "
                                        "once; rebuild the shards from one manifest")
            seen[subject] = folder
    if len(seen) != total:
        raise CacheDamagedError(f"the shards' tables list {len(seen)} subjects, their descriptions ({DESCRIPTION_FILE}) "
                                f"{total}; a shard is damaged or partly copied: rebuild it")
    return sorted(seen)
