"""ECG-only prediction of the CMR phenotypes from a trained run (``python -m ptacl_core predict``): ``predictor``
(the frozen ECG encoder, its ridge probes, conformal intervals, novelty score and nearest patients), ``inputs``
(which files a call names, and its output folder), ``report`` (the printed text). Imports no training loop.
"""

from ptacl_core.prediction.inputs import ECG_SUFFIXES, PREDICTION_TABLES, check_output, expand_inputs
from ptacl_core.prediction.predictor import PredictionError, Predictor
from ptacl_core.prediction.report import format_report, shown

__all__ = ["ECG_SUFFIXES", "PREDICTION_TABLES", "PredictionError", "Predictor", "check_output", "expand_inputs",
           "format_report", "shown"]
