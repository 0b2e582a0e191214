"""Preprocessing of paired ECG + cine into a validated, memory-mapped training cache (METHOD.md §2).

- ``config``: the typed preprocessing config and its presets (part of the cache's fingerprint);
- ``ecg_filtering``: one ECG to ``(12, fs * duration_s)`` filtered, with R peaks and quality flags;
- ``ecg_measures``: measurements on 12-lead ECGs (R peaks, heart rate, QRS duration, QT, amplitudes);
- ``cine_cropping``: one cine to ``(n_slices, n_frames, size, size)`` in [0, 1], cropped around the heart;
- ``subject``: one subject read, checked and preprocessed, every failure returned as (stage, reason);
- ``cache``: the cache's layout, its description (``cache.json``) and its reader ``Cache``;
- ``build``: building a cache (resumable, idempotent, shardable, in worker processes);
- ``merge``: joining the shard caches of a cluster build;
- ``dataset``: the torch Dataset and batch loader over a cache, with augmentation (the only module with torch).
"""

from ptacl_core.preprocessing.config import PRESETS, CmrConfig, EcgConfig, PreprocessConfig

__all__ = ["PRESETS", "CmrConfig", "EcgConfig", "PreprocessConfig"]
