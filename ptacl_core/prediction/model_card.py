"""The model card of a bundle (its ``README.md``, in the Hugging Face layout: YAML metadata, then what the model is,
what it was trained on, how it scores, how to use it and where it must not be used), written from config.json alone.
"""

from __future__ import annotations

import math

# UK Biobank's guidance on what may leave its Research Analysis Platform, and its Access Management System
UKB_DOWNLOAD_GUIDANCE = ("https://community.ukbiobank.ac.uk/hc/en-gb/articles/31972311370013-Guidance-on-Data-Downloads-"
                         "and-Exemptions")
UKB_ACCESS_MANAGEMENT = "https://ams.ukbiobank.ac.uk"


def _number(value, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}g}"


def _interval(values) -> str:
    low, high = values if values else (None, None)
    return f"[{_number(low)}, {_number(high)}]"


def model_card(config: dict) -> str:
    """Markdown text of the card for a bundle's ``config`` (``bundle.bundle_config``)."""
    training, phenotypes, source = config["training"], config["phenotypes"], config["input"]
    synthetic = training["synthetic"]
    cohort = ("the kit's synthetic paired ECG-CMR cohort (generated, known ground truth; no person's data)" if synthetic
              else "the user's own paired ECG-CMR cohort")
    banner = ("> **DEMONSTRATION ONLY.** This model learned from synthetic ECG-CMR pairs. Its numbers show the pipeline "
              "working; they are not a measurement of any patient, and it must not be used on people.\n\n" if synthetic else "")
    rows = "\n".join(f"| {name} | {entry['unit']} | {_number(entry['test_r2'])} {_interval(entry['test_r2_interval'])} | "
                     f"{_number(entry['test_mae'])} {_interval(entry['test_mae_interval'])} | {entry['n_test']} | "
                     f"{_number(entry['interval_halfwidth'])} | {_number(entry['test_coverage'])} |"
                     for name, entry in phenotypes.items())
    encoder = config["ecg_encoder"]
    split = training["n_subjects"]
    onnx = config.get("onnx")
    onnx_line = (f"`model.onnx` (opset {onnx['opset']}): the same predictor as one graph; on {onnx['checked_on']} its "
                 f"largest difference from PyTorch was {onnx['max_abs_difference']['embedding']:.2g} (embedding) and "
                 f"{onnx['max_abs_difference']['phenotypes']:.2g} (phenotypes, in their units)." if onnx else
                 "No ONNX graph (exported with --no-onnx, or the onnx extra was not installed).")
    return f"""---
license: {"mit" if synthetic else "other"}
library_name: ptacl-kit
tags:
- ecg
- cardiac-mri
- contrastive-learning
- {"synthetic-data" if synthetic else "clinical-research"}
pipeline_tag: tabular-regression
---

# ECG-only cardiac MRI phenotype predictor ({training['method']}, {training['preset']} preset)

{banner}An ECG encoder trained with {"PTACL (patient- and temporal-alignment contrastive learning)" if training['method'] == 'ptacl'
else f"the {training['method']!r} objective"} against cine cardiac MRI, with one linear (ridge) head per phenotype: a
12-lead resting ECG in, estimates of what only a cardiac MRI measures out, each with a split-conformal interval and an
out-of-distribution score. Exported by the PTACL reproducibility kit {config['kit_version']} (bundle format
{config['bundle_version']}).

## Files

- `model.safetensors`: the ECG encoder's weights (`ecg_encoder.*`, float32), the heads (`heads.<phenotype>.mean`,
  `.scale`, `.coef`, `.intercept`, float64: `((embedding - mean) / scale) @ coef + intercept`) and the
  out-of-distribution reference (`novelty.mean`, `novelty.precision`, `novelty.validation_distances`).
- `config.json`: architecture, preprocessing, phenotypes with their test metrics, conformal half-widths, provenance.
- {onnx_line}

## Input and preprocessing

{len(source['leads'])} leads ({', '.join(source['leads'])}) in mV, resampled to {source['fs_hz']} Hz and cut to
{source['n_samples']} samples, filtered as `config.json` → `preprocessing.ecg` says (high-pass
{config['preprocessing']['ecg']['highpass_hz']} Hz, low-pass {config['preprocessing']['ecg']['lowpass_hz']} Hz, notch
{config['preprocessing']['ecg']['notch_hz']} Hz, normalisation {config['preprocessing']['ecg']['normalisation']}), each
value rounded through float16. The kit does all of it: `python -m ptacl_core predict --bundle DIR ECG_FILES...`
reads WFDB, DICOM waveform, GE MUSE, Philips, SCP-ECG, EDF, HL7 aECG and UK Biobank XML.

## Architecture

ECG encoder: {encoder['architecture']}, width {encoder['dim']}, depth {encoder['depth']}, tokens of
{encoder['token_leads']} lead(s) x {encoder['patch_samples']} samples; embedding size {config['embedding_dim']}.

## Training data

Trained on {cohort}: {split['train']} training, {split['val']} validation and {split['test']} test subjects
(run `{training['run']}`, {training['epochs']} epochs, seed {training['seed']}; data fingerprint
`{training['data_fingerprint'][:16]}`). The heads were fitted on the training subjects, the conformal intervals and
the out-of-distribution threshold calibrated on the validation subjects, and every metric below measured on the test
subjects, once.

## Evaluation (test split)

R² and MAE with 95 % bootstrap intervals over the test subjects; the conformal half-width for
{100 * config['conformal']['coverage']:.0f} % nominal coverage and the coverage it reached on test.

| phenotype | unit | R² [95 % CI] | MAE [95 % CI] | n test | interval half-width | test coverage |
| --- | --- | --- | --- | --- | --- | --- |
{rows}

## Intended use

Research on what a resting ECG carries about cardiac structure and function: reproducing and extending the PTACL
paper, screening-study design, comparisons of ECG representations. Each estimate comes with its interval and an
out-of-distribution verdict (Mahalanobis distance from the training ECGs; "out of distribution" above the largest
validation distance); read both.

## Out of scope and limitations

- Not a medical device; not for diagnosis, triage or any decision about a person.
- {"Synthetic training data: the model has never seen a real heart." if synthetic else
   "Valid for ECGs like the training cohort's (devices, population, preprocessing); ECGs flagged unusual or out of distribution get estimates that are extrapolations."}
- Intervals are marginal over subjects like the validation ones, not a guarantee for one patient.
- The bundle carries no gallery of training patients: `predict --bundle` gives no nearest patients.

## Data governance

A model trained on a cohort's data can be subject to that cohort's rules before it is shared. UK Biobank: only
summary results that hold no individual-level information may leave its Research Analysis Platform
({UKB_DOWNLOAD_GUIDANCE}); whether trained weights qualify is your project's to settle with UK Biobank through the
Access Management System ({UKB_ACCESS_MANAGEMENT}) under your Material Transfer Agreement, before publishing. The
kit's `export` refuses a bundle whose names or metadata carry a participant id of the training cache, and a bundle
carries no per-participant table (the novelty reference keeps the validation subjects' distances, sorted, unlinked
from any id).
"""
