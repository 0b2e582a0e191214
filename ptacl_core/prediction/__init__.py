"""ECG-only prediction of the CMR phenotypes from a trained run (``python -m ptacl_core predict``): ``predictor``
(the frozen ECG encoder, its ridge probes, conformal intervals, novelty score and nearest patients), ``heads`` (a
fitted probe as plain arrays), ``inputs`` (which files a call names, and its output folder), ``report`` (the printed
text); ``bundle`` (``export`` and ``predict --bundle``: safetensors, config.json, ``model_card``, ``onnx_graph``) and
``release`` (no participant id leaves in a bundle). Imports no training loop.
"""

from ptacl_core.prediction.inputs import ECG_SUFFIXES, PREDICTION_TABLES, check_output, expand_inputs
from ptacl_core.prediction.predictor import PredictionError, Predictor
from ptacl_core.prediction.report import format_report, shown

__all__ = ["ECG_SUFFIXES", "PREDICTION_TABLES", "PredictionError", "Predictor", "check_output", "expand_inputs",
           "format_report", "shown"]
