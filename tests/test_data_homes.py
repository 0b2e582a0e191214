"""One home per data concept: the cache's description (``cache.json``) is read and written only by
``preprocessing.cache``; the synthetic cohort's ground-truth file (``latents.csv``) is named only by
``synthetic.cohort``. Everything else goes through their functions and constants."""

import json
from pathlib import Path

import pytest
from test_layout import _strings  # string constants of a module, docstrings excluded

from ptacl_core.preprocessing.cache import (
    DESCRIPTION_FILE,
    Cache,
    CacheMismatchError,
    is_cache,
    read_description,
    write_description,
)
from ptacl_core.preprocessing.merge import merge_caches

PACKAGE = Path(__file__).resolve().parent.parent / "ptacl_core"


@pytest.mark.parametrize("literal, home", [("cache.json", "preprocessing/cache.py"), ("latents.csv", "synthetic/cohort.py")])
def test_a_data_file_name_has_one_home(literal, home):
    holders = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if any(literal in s for s in _strings(p))}
    assert holders == {home}


def test_the_description_round_trips_and_a_folder_without_one_is_named(tmp_path):
    assert not is_cache(tmp_path)
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}: not a cache \\(no cache.json\\); build it with"):
        read_description(tmp_path)
    write_description(tmp_path, {"fingerprint": "abc", "cohort": "/x"})
    assert is_cache(tmp_path) and (tmp_path / DESCRIPTION_FILE).exists()
    assert read_description(tmp_path) == {"fingerprint": "abc", "cohort": "/x"}
    assert (tmp_path / "cache.json").read_text() == json.dumps({"fingerprint": "abc", "cohort": "/x"}, indent=1)


def test_a_cache_knows_its_description_and_cohort(cohort, tiny_cache):
    cache = Cache.open(tiny_cache)
    on_disk = json.loads((tiny_cache / "cache.json").read_text())
    assert cache.description == on_disk and cache.fingerprint == on_disk["fingerprint"]
    assert cache.cohort == str(Path(cohort).resolve())


def test_the_readers_keep_their_messages(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a cache \\(no cache.json\\); build it with `python -m ptacl_core preprocess`"):
        Cache.open(tmp_path)
    with pytest.raises(CacheMismatchError, match=f"^{tmp_path}: not a cache \\(no cache.json\\)$"):
        merge_caches([tmp_path], tmp_path / "out")
