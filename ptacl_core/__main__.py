"""Command line: ``python -m ptacl_core {run,synth,preprocess,merge-cache,build-manifest,train,predict,export} ...``
(also installed as ``ptacl``).

Every sub-command handles bad input the same way (``main``): a kit error (a bad cohort table, a cache built
with another config, a bad ``--shard`` or override, a missing file, a run that cannot predict) prints one line,
``error (<command>): <what and where>``, and exits with status 2; no traceback (``PTACL_DEBUG=1`` shows it). So do a
full disk (``paths.DiskFullError``, or any write failing with ENOSPC, EDQUOT or EFBIG) and a run another process is
training (``runs.RunBusyError``). ``--out`` folders (and ``synth --out``) must not be or hold symbolic links.
A notebook that fails exits with 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ptacl_core import paths
from ptacl_core.io.csv_cells import write_csv
from ptacl_core.io.manifest_builder import build_manifest
from ptacl_core.model.presets import shared_preprocessing
from ptacl_core.preprocessing.build import Shard, build_cache
from ptacl_core.preprocessing.cache import CacheMismatchError
from ptacl_core.preprocessing.config import PRESETS, PreprocessConfig
from ptacl_core.preprocessing.merge import merge_caches
from ptacl_core.preprocessing.subject import SUBJECT_TIMEOUT_S, check_timeout
from ptacl_core.synthetic import CohortMismatchError, SynthConfig, generate_cohort
from ptacl_core.tools.runner import (
    ENCODER_NOTEBOOK,
    ENCODER_PER_PRESET,
    ENCODER_SHARED,
    SCALING_NOTEBOOK,
    SCALING_POINT_NOTEBOOKS,
    NotebookFailed,
    list_notebooks,
    parse_presets,
    parse_value,
    profile_parameters,
    run_notebooks,
)
from ptacl_core.tools.threads import resolve_workers

# Imported at the top: every torch-free command (run, synth, preprocess, merge-cache, build-manifest). train and
# predict load torch (and train its loop) inside their handlers, so --help and the data commands start without it.
DEFAULT_WORKERS = None  # every command with --workers: None = all cores (``threads.resolve_workers``)


def _workers(value: int | None) -> int:
    return resolve_workers(value)


def _run(args: argparse.Namespace) -> int:
    only = args.only.split(",") if args.only else None
    if args.profile == "scaling" and not only:
        only = [*SCALING_POINT_NOTEBOOKS, SCALING_NOTEBOOK]  # notebooks 00-04 at each N, then the scaling figure
    if args.profile == "encoders" and not only:
        only = [*ENCODER_SHARED, *ENCODER_PER_PRESET, ENCODER_NOTEBOOK]  # 00-01 once, 02-04 per preset, the choice
    notebooks = list_notebooks(Path(args.notebooks) if args.notebooks else None, only)
    parameters = {name: parse_value(value) for name, value in (args.parameter or [])}
    presets = {**profile_parameters(args.profile), **parameters}.get("encoder_presets")
    if presets is not None:  # the encoders profile: one cache for every preset (a ValueError before anything runs)
        parameters.setdefault("preset", shared_preprocessing(parse_presets(presets)))  # notebook 01 builds it
    try:
        run_notebooks(notebooks, Path(args.output_dir) if args.output_dir else None, parameters, fast=args.fast,
                      progress_bar=not args.no_progress, twin=not args.no_twin, profile=profile_parameters(args.profile))
    except NotebookFailed as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    return 0


def _synth(args: argparse.Namespace) -> int:
    paths.refuse_links(args.out)  # the cohort's files must land in the folder, not where a link points
    config = SynthConfig(n_slices=args.slices, n_frames=args.frames, image_size=args.image_size, coupling=args.coupling)
    summary = generate_cohort(args.out, args.n, seed=args.seed, config=config, workers=_workers(args.workers))
    print(f"{summary['n_subjects']} subjects in {args.out}: {summary['n_written']} written, "
          f"{summary['n_skipped']} already complete, {len(summary['failures'])} failed; "
          f"{summary['subjects_per_s']:.1f} subjects/s")
    for subject, stage, reason in summary["failures"]:
        print(f"  failed {subject} at {stage}: {reason}", file=sys.stderr)
    return 1 if summary["failures"] else 0


def _preprocess(args: argparse.Namespace) -> int:
    config = PreprocessConfig.preset(args.preset)
    shard = Shard.parse(args.shard) if args.shard else None
    summary = build_cache(args.cohort, args.out, config, workers=_workers(args.workers), shard=shard,
                          allow_outside_paths=args.allow_outside_paths, subject_timeout_s=args.subject_timeout or None)
    print(f"{summary['n_processed_now']} subjects processed now ({summary['subjects_per_s']:.1f}/s); "
          f"failures listed in {Path(args.out) / 'failures.csv'}")
    return 0 if summary["complete"] else 1


def _merge(args: argparse.Namespace) -> int:
    summary = merge_caches(args.shards, args.out)
    print(f"merged {len(args.shards)} shards into {args.out}: {summary['n_cached']} cached, {summary['n_failed']} failed")
    return 0


def _manifest(args: argparse.Namespace) -> int:
    manifest = Path(args.cohort) / "manifest.csv"
    if manifest.is_symlink():  # writing it would overwrite the file the link points to
        raise ValueError(f"{manifest}: is a symbolic link (-> {os.readlink(manifest)}); writing the manifest would "
                         "overwrite its target: remove the link first")
    rows, problems = build_manifest(args.cohort, layout=args.layout)
    print(f"{len(rows)} subjects with both modalities written to {Path(args.cohort) / 'manifest.csv'}")
    for subject, stage, reason in problems:
        print(f"  left out {subject} ({stage}): {reason}", file=sys.stderr)
    return 0


def _train(args: argparse.Namespace) -> int:
    from ptacl_core.training.config import load_config  # lazy: torch loads only for train
    from ptacl_core.training.loop import train  # lazy: the training loop loads only for train

    config = load_config(args.config, args.overrides)
    run_dir = train(config, progress=not args.no_progress)
    print(f"run folder: {run_dir}")
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seconds(text: str) -> float:
    """A subject time limit: a non-negative, finite number of seconds (0: no limit)."""
    try:
        value = float(text)
        check_timeout(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return value


def _predict(args: argparse.Namespace) -> int:
    from ptacl_core.prediction import (  # lazy: torch loads only for predict
        PREDICTION_TABLES,
        Predictor,
        check_output,
        expand_inputs,
        format_report,
        shown,
    )
    from ptacl_core.training.runs import run_folder  # lazy: torch loads only for predict

    if (args.run is None) == (args.bundle is None):
        raise ValueError("name a trained run (--run RUN) or a model bundle (--bundle DIR), not both")
    if args.bundle is not None and args.cache is not None:
        raise ValueError("--cache is for --run: a bundle carries its fitted heads")
    if args.onnx and args.bundle is None:
        raise ValueError("--onnx runs a bundle's model.onnx: name the bundle with --bundle DIR")
    source = run_folder(args.run).name if args.run is not None else Path(args.bundle).resolve().name
    out = check_output(Path(args.out) if args.out else Path("outputs") / "predictions" / source)
    if args.run is not None:
        predictor = Predictor.from_run(args.run, args.cache, coverage=args.coverage)
    else:
        predictor = Predictor.from_bundle(args.bundle, onnx=args.onnx)
        if args.coverage != predictor.coverage:
            print(f"note: the bundle's intervals were calibrated for {100 * predictor.coverage:.0f} % coverage; "
                  "--coverage applies to --run", file=sys.stderr)
    for note in predictor.notes:
        print(f"note: {shown(note)}", file=sys.stderr)
    cohort = "the kit's synthetic cohort" if predictor.synthetic else "its own cohort"
    if args.run is not None:
        origin = f"{shown(str(args.run))}, trained on {cohort} (cache {shown(predictor.provenance['cache'])})"
    else:
        engine = "onnxruntime" if args.onnx else "PyTorch"
        origin = (f"bundle {shown(str(args.bundle))} ({engine}; run {shown(predictor.provenance.get('run', '?'))}), "
                  f"trained on {cohort}")
    print(f"model: {origin}; intervals: split-conformal, {100 * predictor.coverage:.0f} % nominal")
    if predictor.synthetic:
        print("DEMONSTRATION ONLY: this model learned from synthetic ECG-CMR pairs; its numbers show the pipeline working, "
              "they are not a measurement of this patient.")
    predictions, neighbours = predictor.predict(expand_inputs(args.files), top=args.top)
    print(format_report(predictions, neighbours, predictor.test_errors))
    out.mkdir(parents=True, exist_ok=True)
    tables = [out / name for name in PREDICTION_TABLES]
    write_csv(predictions.round(3), tables[0], index=False)
    write_csv(neighbours.round(3), tables[1], index=False)
    failed = int((predictions.status != "ok").sum())
    print(f"\n{len(predictions) - failed} of {len(predictions)} file(s) predicted; tables in {shown(str(tables[0]))} and "
          f"{shown(str(tables[1]))}")
    return 1 if failed else 0


def _export(args: argparse.Namespace) -> int:
    from ptacl_core.prediction.bundle import export_bundle  # lazy: torch loads only here

    paths.refuse_links(args.out)
    out, config = export_bundle(args.run, args.out, args.cache, coverage=args.coverage, onnx=not args.no_onnx)
    written = sorted(p.name for p in out.iterdir())
    print(f"bundle written to {out}: {', '.join(written)}")
    if config["onnx"]:
        worst = config["onnx"]["max_abs_difference"]
        print(f"model.onnx checked against PyTorch on {config['onnx']['checked_on']}: max |difference| "
              f"{worst['embedding']:.2g} (embedding), {worst['phenotypes']:.2g} (phenotypes)")
    if config["training"]["synthetic"]:
        print("the model card says DEMONSTRATION ONLY: this model learned from the kit's synthetic cohort")
    print(f"check with: python -m ptacl_core predict --bundle {out} ECG_FILES...")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ptacl_core", description="PTACL reproducibility kit")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="execute the numbered notebooks in order with papermill")
    run.add_argument("--only", help="comma-separated notebook numbers, e.g. 00,01")
    run.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                     help="set a notebook parameter (all notebooks), e.g. -p n_subjects 200")
    run.add_argument("--fast", action="store_true", help="tiny parameters (tests, smoke runs)")
    run.add_argument("--profile", default="default", choices=["default", "full", "paper", "scaling", "encoders"],
                     help="default: `make reproduce` (~20 min on 2 CPU cores); full: every variant and baseline, more "
                          "seeds and epochs (CPU, hours); paper: the ViT-B preset on a GPU; scaling: PTACL vs global-only "
                          "at N = 1,000-8,000 subjects per cohort (-p scaling_sizes 1000,2000,4000 to stop at 4,000); encoders: the "
                          "ViT and the 1-D ResNet ECG encoder, chosen on validation, both reported on test")
    run.add_argument("--output-dir", help="where executed notebooks go (default outputs/notebooks)")
    run.add_argument("--notebooks", help="folder of notebooks (default: the kit's notebooks/)")
    run.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")
    run.add_argument("--no-twin", action="store_true", help="run notebooks 01-05 on the cohort only, not on its null twin")
    run.set_defaults(handler=_run)

    synth = commands.add_parser("synth", help="generate the synthetic paired ECG-CMR cohort")
    synth.add_argument("--out", required=True, type=Path, help="cohort folder to write (resumes if interrupted)")
    synth.add_argument("--n", type=int, default=1000, help="number of subjects")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--workers", type=_positive_int, default=DEFAULT_WORKERS, help="processes (default: all cores)")
    synth.add_argument("--slices", type=int, default=3, help="short-axis slices, base to apex (>= 3)")
    synth.add_argument("--frames", type=int, default=50, help="cine frames over one cardiac cycle")
    synth.add_argument("--image-size", type=int, default=80, help="pixels per side (2 mm each)")
    synth.add_argument("--coupling", choices=["physiological", "none"], default="physiological",
                       help="physiological: ECG timing follows the heart; none: the null-control twin (ECG timing "
                            "decoupled from mechanics beyond heart rate)")
    synth.set_defaults(handler=_synth)

    preprocess = commands.add_parser("preprocess", help="build the memory-mapped training cache from a cohort")
    preprocess.add_argument("--cohort", required=True, type=Path, help="cohort folder (manifest.csv, ...)")
    preprocess.add_argument("--out", required=True, type=Path, help="cache folder (resumes if interrupted)")
    preprocess.add_argument("--preset", default="default", choices=sorted(PRESETS))
    preprocess.add_argument("--workers", type=_positive_int, default=DEFAULT_WORKERS, help="processes (default: all cores)")
    preprocess.add_argument("--shard", help="I/N: only this shard of the subjects (cluster array jobs)")
    preprocess.add_argument("--allow-outside-paths", action="store_true",
                            help="let manifest paths point outside the cohort folder (absolute or ../); refused by default")
    preprocess.add_argument("--subject-timeout", type=_seconds, default=SUBJECT_TIMEOUT_S,
                            help="seconds one subject may take before it is recorded as failed (0: no limit)")
    preprocess.set_defaults(handler=_preprocess)

    merge = commands.add_parser("merge-cache", help="merge shard caches built with --shard I/N")
    merge.add_argument("--out", required=True, type=Path)
    merge.add_argument("shards", nargs="+", type=Path)
    merge.set_defaults(handler=_merge)

    manifest = commands.add_parser("build-manifest", help="write manifest.csv for a folder of ECG and CMR files")
    manifest.add_argument("--cohort", required=True, type=Path)
    manifest.add_argument("--layout", choices=["kit", "ukb"], default="kit",
                          help="kit: ecg/<id>.*, cmr/<id>*; ukb: <eid>_20205_2_0.xml, <eid>_20209_2_0.zip")
    manifest.set_defaults(handler=_manifest)
    train = commands.add_parser("train", help="train one method (also under torchrun --nproc_per_node=N for DDP)")
    train.add_argument("--config", type=Path, help="JSON config (see configs/); defaults to the tiny PTACL run")
    train.add_argument("overrides", nargs="*", help="key=value, e.g. method=global optim.epochs=5 cache=data/cache/...")
    train.add_argument("--no-progress", action="store_true")
    train.set_defaults(handler=_train)

    predict = commands.add_parser("predict", help="CMR phenotypes and the nearest gallery patients from ECG files alone")
    predict.add_argument("--run", type=Path, help="a trained run folder, e.g. runs/ptacl_tiny_seed0")
    predict.add_argument("--bundle", type=Path, help="instead of --run: a model bundle written by `export` (no nearest patients)")
    predict.add_argument("--onnx", action="store_true", help="with --bundle: run its model.onnx with onnxruntime")
    predict.add_argument("files", nargs="+", type=Path, help="ECG files (WFDB .hea/.dat/.mat or the record name, DICOM waveform, GE MUSE XML, "
                                                             "Philips XML, SCP-ECG, EDF, HL7 aECG, UK Biobank XML), "
                                                             "folders of them, or a manifest .csv with an ecg column")
    predict.add_argument("--cache", type=Path, help="the cache the probes are fitted on (default: the run's training cache)")
    predict.add_argument("--top", type=_positive_int, default=3, help="nearest gallery patients to list per file (>= 1)")
    predict.add_argument("--coverage", type=float, default=0.9, help="nominal coverage of the conformal intervals (0-1)")
    predict.add_argument("--out", type=Path, help="folder for predictions.csv and nearest_patients.csv "
                                                  "(default outputs/predictions/<run>)")
    predict.set_defaults(handler=_predict)

    export = commands.add_parser("export", help="a shareable ECG-only model bundle: safetensors, config.json, model card, ONNX")
    export.add_argument("--run", required=True, type=Path, help="a trained run folder, e.g. runs/ptacl_tiny_seed0")
    export.add_argument("--out", required=True, type=Path, help="the bundle folder to write (new, empty, or a bundle)")
    export.add_argument("--cache", type=Path, help="the cache the heads are fitted on (default: the run's training cache)")
    export.add_argument("--coverage", type=float, default=0.9, help="nominal coverage of the conformal intervals (0-1)")
    export.add_argument("--no-onnx", action="store_true", help="write no model.onnx (needs no onnx extra)")
    export.set_defaults(handler=_export)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """What bad input raises anywhere in the kit: reported in one line, never as a traceback."""
    from ptacl_core.prediction import PredictionError  # lazy: the prediction package loads torch
    from ptacl_core.training.runs import RunBusyError  # lazy: the run folder's module loads torch

    # ValueError covers CohortError, EcgReadError, CmrReadError, PhenotypeTableError, bad --shard and overrides;
    # CacheMismatchError covers CacheDamagedError
    return (ValueError, FileNotFoundError, NotADirectoryError, CacheMismatchError, CohortMismatchError, PredictionError,
            RunBusyError, paths.DiskFullError)


def _disk_full_line(error: OSError) -> str:
    """One line for a full disk that no writer named: the file and the system's words."""
    where = f"{error.filename}: " if error.filename else ""
    return f"{where}disk full ({error.strerror}); free some space (or raise the quota / file-size limit) and run again"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except _user_errors() as error:
        if os.environ.get("PTACL_DEBUG"):  # the full traceback, for a bug report
            raise
        print(f"error ({args.command}): {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, quota or file-size limit is the user's to fix: one line too
        if not paths.is_disk_full(error) or os.environ.get("PTACL_DEBUG"):
            raise
        print(f"error ({args.command}): {_disk_full_line(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
