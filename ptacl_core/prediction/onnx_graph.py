"""The ECG-only predictor as one ONNX graph (preprocessed ECG -> embedding -> phenotypes), for deployment without
PyTorch, and its runner for ``predict --bundle DIR --onnx``.

Graph input ``ecg``: (batch, 12, L) float32, mV, the bundle's preprocessing applied and each value rounded through
float16 (as the training cache stores ECGs). Outputs ``embedding``: (batch, D) float32, the encoder's pooled
embedding; ``phenotypes``: (batch, P) float64, one column per head in the order of the model's ``phenotypes``
metadata (and of config.json). Needs the ``onnx`` extra (``pip install -e .[onnx]``: onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ptacl_core.prediction.heads import LinearHead

OPSET = 18
INPUT, OUTPUTS = "ecg", ("embedding", "phenotypes")


class EcgPhenotypeGraph(nn.Module):
    """encoder + stacked linear heads: (B, 12, L) float32 -> ((B, D) float32, (B, P) float64)."""

    def __init__(self, encoder: nn.Module, heads: dict[str, LinearHead]):
        super().__init__()
        self.encoder = encoder.eval()
        self.names = tuple(heads)
        for key in ("mean", "scale", "coef"):
            self.register_buffer(key, torch.from_numpy(np.stack([getattr(h, key) for h in heads.values()])))  # (P, D)
        self.register_buffer("intercept", torch.from_numpy(np.stack([h.intercept for h in heads.values()])))  # (P,)

    def forward(self, ecg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, pooled = self.encoder(ecg)
        standardised = (pooled.double()[:, None, :] - self.mean) / self.scale  # (B, P, D)
        return pooled, (standardised * self.coef).sum(dim=-1) + self.intercept


def onnx_available() -> str | None:
    """None when ONNX export and onnxruntime can be used, else what to install."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as error:
        return f"ONNX export needs the onnx extra (pip install -e '.[onnx]'): {error}"
    return None


def export_onnx(encoder: nn.Module, heads: dict[str, LinearHead], n_samples: int, path: Path,
                metadata: dict[str, str]) -> Path:
    """Write the graph of ``encoder`` and ``heads`` for (batch, 12, n_samples) inputs to ``path`` (a dynamic batch),
    with ``metadata`` (e.g. the phenotype order) as ONNX metadata properties."""
    import onnx  # lazy: the optional onnx extra

    graph = EcgPhenotypeGraph(encoder, heads).eval()
    example = torch.zeros(2, 12, n_samples)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # the exporter narrates each stage
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        program = torch.onnx.export(graph, (example,), input_names=[INPUT], output_names=list(OUTPUTS), opset_version=OPSET,
                                    dynamic_shapes={"ecg": {0: torch.export.Dim("batch")}}, dynamo=True, verbose=False)
    model = program.model_proto
    strip_debug_strings(model)
    for key, value in {**metadata, "phenotypes": ",".join(graph.names)}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def _node_lists(model) -> list:
    """The main graph, every local function and every subgraph of a node attribute: whatever holds nodes."""
    pending, found = [model.graph, *model.functions], []
    while pending:
        holder = pending.pop()
        found.append(holder)
        for node in holder.node:
            for attribute in node.attribute:
                pending += ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs)
    return found


def strip_debug_strings(model) -> None:
    """Drop what the exporter records for debugging: each node's metadata (stack traces with absolute source paths,
    module scopes) and doc strings. The graph computes the same."""
    model.doc_string = ""
    for holder in _node_lists(model):
        holder.doc_string = ""
        for node in holder.node:
            node.doc_string = ""
            del node.metadata_props[:]


def _names(values) -> list[str]:
    return [value if isinstance(value, str) else value.name for value in values]


def onnx_strings(path: Path) -> list[str]:
    """Every name and string an ONNX file carries (metadata, producer, graph, function, node, value and initializer
    names, string attributes): what ``release`` checks before a bundle leaves."""
    import onnx  # lazy: the optional onnx extra

    model = onnx.load(str(path), load_external_data=False)
    texts = [model.producer_name, model.producer_version, model.doc_string, model.domain,
             *(f"{p.key} {p.value}" for p in model.metadata_props)]
    for holder in _node_lists(model):
        texts += [holder.name, holder.doc_string, *_names(holder.input), *_names(holder.output),
                  *_names(getattr(holder, "value_info", [])), *_names(getattr(holder, "initializer", []))]
        for node in holder.node:
            texts += [node.name, node.op_type, node.domain, node.doc_string, *node.input, *node.output,
                      *(f"{p.key} {p.value}" for p in node.metadata_props)]
            texts += [a.s.decode("utf-8", "replace") for a in node.attribute if a.s]
    return [text for text in texts if text]


class OnnxEmbedder:
    """(B, 12, L) float32 -> (B, D) float32 embeddings (and ``phenotypes``: the graph's own heads) by onnxruntime."""

    def __init__(self, path: Path | str):
        import onnxruntime  # lazy: the optional onnx extra

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.phenotype_names = tuple(self.session.get_modelmeta().custom_metadata_map.get("phenotypes", "").split(","))

    def run(self, ecgs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        embedding, phenotypes = self.session.run(list(OUTPUTS), {INPUT: np.asarray(ecgs, dtype=np.float32)})
        return embedding, phenotypes

    def __call__(self, ecgs: np.ndarray) -> np.ndarray:
        return self.run(ecgs)[0]
