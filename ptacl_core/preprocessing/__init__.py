"""Preprocessing of paired ECG + cine into a validated, memory-mapped training cache (METHOD.md §2)."""

from ptacl_core.preprocessing.config import PRESETS, CmrConfig, EcgConfig, PreprocessConfig

__all__ = ["PRESETS", "CmrConfig", "EcgConfig", "PreprocessConfig"]
