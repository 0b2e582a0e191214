"""Phenotypes from ECG files with a bundle's model.onnx and onnxruntime: no torch (the kit reads and preprocesses).

    python examples/onnx_predict.py BUNDLE_DIR ECG_FILE...
"""
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime

from ptacl_core.io.ecg import read_ecg
from ptacl_core.preprocessing.config import PreprocessConfig
from ptacl_core.preprocessing.ecg_filtering import preprocess_ecg

bundle, files = Path(sys.argv[1]), sys.argv[2:]
config = json.loads((bundle / "config.json").read_text())
preprocessing = PreprocessConfig.from_dict(config["preprocessing"]).ecg
session = onnxruntime.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
names = session.get_modelmeta().custom_metadata_map["phenotypes"].split(",")  # the graph's output columns
for file in files:
    try:
        ecg = read_ecg(file)  # (12, L) mV, any format the kit reads
        signal = preprocess_ecg(ecg.signal, ecg.fs, preprocessing).signal  # (12, n_samples)
    except ValueError as error:  # EcgReadError, EcgQualityError: this file's problem, named; the others go on
        print(f"{file}\terror\t{error}")
        continue
    batch = signal.astype(np.float16).astype(np.float32)[None]  # rounded as the training cache stores ECGs
    embedding, phenotypes = session.run(["embedding", "phenotypes"], {"ecg": batch})
    for name, value in zip(names, phenotypes[0], strict=True):
        entry = config["phenotypes"][name]
        half = float("inf") if entry["interval_halfwidth"] is None else entry["interval_halfwidth"]  # null: no interval
        print(f"{file}\t{name}\t{value:.3f}\t{value - half:.3f}\t{value + half:.3f}\t{entry['unit']}")
