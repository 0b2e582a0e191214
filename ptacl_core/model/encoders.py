"""The two encoders (METHOD.md §3), written for this kit: an ECG ViT over (lead x time) patches and a cine
ViT over (time x space) tubelets, with projection heads and optional masked-autoencoder pretraining.

Reads top to bottom like MAE's model file: config, blocks, positional embeddings, the two encoders, heads,
the MAE wrapper. Attention is PyTorch's fused ``scaled_dot_product_attention``. Shapes:

- ECG in (B, 12, L) -> tokens (B, G, n_times, D), pooled (B, D), with G = 12 / token_leads lead groups (a token
  spans ``token_leads`` leads x ``patch_samples`` samples: 1 x P is MMCL's per-lead patch, 12 x P one token per
  time step over all leads); each time step knows its centre in seconds.
- CMR (cine) in (B, T, S, S) or (B, Z, T, S, S) -> tokens (B, T', S', D) with T' = T / tubelet temporal positions
  (token t' covers frames [t' * tubelet, (t' + 1) * tubelet)) and S' = (S / patch)^2 spatial ones; pooled (B, D).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ptacl_core.config import check_keys, check_number
from ptacl_core.model.phases import phase_bin_means

# The largest model a config may describe (both encoders, heads and an MAE decoder): 400 M parameters, 1.6 GB of
# float32 weights, over twice the ViT-B ``paper`` preset (~180 M). A config past it (a tampered checkpoint's, a
# typo) is refused before anything is allocated.
MAX_MODEL_PARAMETERS = 400_000_000

# The MAE's light decoder: one block, narrower than the encoder (MAE's asymmetric design).
MAE_DECODER_DIM = 64
MAE_DECODER_HEADS = 4
MAE_DECODER_MLP_RATIO = 2.0


def _check_transformer(section: str, dim: int, depth: int, heads: int, mlp_ratio: float) -> None:
    """A transformer stack's sizes: positive integers, ``dim`` divisible by ``heads``, a positive MLP width."""
    for name, value in (("dim", dim), ("depth", depth), ("heads", heads)):
        check_number(f"{section}.{name}", value, integer=True, minimum=1)
    if dim % heads:
        raise ValueError(f"{section}.dim ({dim}) must be divisible by {section}.heads ({heads})")
    check_number(f"{section}.mlp_ratio", mlp_ratio, above=0)
    if int(dim * mlp_ratio) < 1:
        raise ValueError(f"{section}.mlp_ratio ({mlp_ratio}) leaves an MLP of no unit at dim {dim}")


def _stack_parameters(dim: int, depth: int, mlp_ratio: float) -> int:
    """Parameters of ``TransformerStack(dim, depth, heads, mlp_ratio)``: per block two norms, qkv, proj, the MLP."""
    hidden = int(dim * mlp_ratio)
    return depth * (4 * dim + 4 * dim * dim + 4 * dim + 2 * dim * hidden + hidden + dim)


ECG_ARCHITECTURES = ("vit", "resnet")
RESNET_STEM_KERNEL = 15  # 60 ms at 250 Hz: the stem sees a QRS slope
RESNET_KERNEL = 7


def resnet_strides(total: int) -> list[int]:
    """The downsampling strides of ``EcgResNet``: ``total``'s prime factors, largest first (25 -> [5, 5], 20 -> [5, 2, 2]),
    so that their product is one token's width."""
    factors, rest, prime = [], total, 2
    while prime * prime <= rest:
        while rest % prime == 0:
            factors.append(prime)
            rest //= prime
        prime += 1
    if rest > 1:
        factors.append(rest)
    return sorted(factors, reverse=True)


def resnet_parameter_count(config: EcgEncoderConfig) -> int:
    """Parameters of ``EcgResNet(config)``: the stem (conv without bias + GroupNorm), one downsampling block per
    stride (two convolutions, two norms, a 1 x 1 shortcut with its norm) and ``depth`` plain blocks, two LayerNorms."""
    dim = config.dim
    stem = config.n_leads * dim * RESNET_STEM_KERNEL + 2 * dim
    block = 2 * (dim * dim * RESNET_KERNEL + 2 * dim)
    downsampling = len(resnet_strides(config.patch_samples)) * (block + dim * dim + 2 * dim)
    return stem + downsampling + config.depth * block + 4 * dim


@dataclass(frozen=True)
class EcgEncoderConfig:
    n_leads: int = 12
    patch_samples: int = 25  # 100 ms at 250 Hz: a phase bin (RR / K) must be at least a token wide (ptacl_core.model.geometry)
    n_times: int = 100  # time patches the positional embedding is built for (interpolated for others)
    token_leads: int = 12  # leads one token spans (1: MMCL's 1 x P patches, 12 x more tokens)
    dim: int = 64
    depth: int = 2
    heads: int = 2
    mlp_ratio: float = 2.0
    # "vit": the transformer over patches; "resnet": a 1-D ResNet (``EcgResNet``) whose output positions are the
    # ViT's tokens (one per patch_samples, same time centres), so the local loss applies unchanged; depth = its
    # residual blocks after the downsampling ones; heads and mlp_ratio are the ViT's only
    architecture: str = "vit"

    def __post_init__(self) -> None:
        for name in ("n_leads", "patch_samples", "n_times", "token_leads"):
            check_number(f"model.ecg.{name}", getattr(self, name), integer=True, minimum=1)
        if self.n_leads % self.token_leads:
            raise ValueError(f"model.ecg.token_leads must divide n_leads ({self.n_leads}), got {self.token_leads}")
        if self.architecture not in ECG_ARCHITECTURES:
            raise ValueError(f"model.ecg.architecture must be one of {ECG_ARCHITECTURES}, got {self.architecture!r}")
        if self.architecture == "resnet" and self.token_leads != self.n_leads:
            raise ValueError(f"model.ecg.architecture 'resnet' convolves all {self.n_leads} leads at once: token_leads "
                             f"must be {self.n_leads}, got {self.token_leads}")
        _check_transformer("model.ecg", self.dim, self.depth, self.heads, self.mlp_ratio)

    @property
    def patch_dim(self) -> int:
        """Samples in one token: token_leads x patch_samples."""
        return self.token_leads * self.patch_samples

    def parameter_count(self) -> int:
        """Parameters of ``EcgEncoder(self)`` (patch, lead and time embeddings, the stack, two norms) or of
        ``EcgResNet(self)`` (stem, blocks, two norms)."""
        if self.architecture == "resnet":
            return resnet_parameter_count(self)
        lead_groups = self.n_leads // self.token_leads
        embeddings = (self.patch_dim + 1 + lead_groups + self.n_times) * self.dim
        return embeddings + _stack_parameters(self.dim, self.depth, self.mlp_ratio) + 4 * self.dim


@dataclass(frozen=True)
class CmrEncoderConfig:
    in_slices: int = 1
    tubelet_frames: int = 2  # 2 of 24 frames: 8 % of the cycle, narrower than a phase bin (1 / K = 14 % in tiny)
    patch_px: int = 24
    n_frames: int = 24
    image_px: int = 48
    dim: int = 64
    depth: int = 2
    heads: int = 2
    mlp_ratio: float = 2.0

    def __post_init__(self) -> None:
        for name in ("in_slices", "tubelet_frames", "patch_px", "n_frames", "image_px"):
            check_number(f"model.cmr.{name}", getattr(self, name), integer=True, minimum=1)
        if self.n_frames < self.tubelet_frames:
            raise ValueError(f"model.cmr.n_frames ({self.n_frames}) must hold one tubelet ({self.tubelet_frames} frames)")
        if self.image_px < self.patch_px:
            raise ValueError(f"model.cmr.image_px ({self.image_px}) must hold one patch ({self.patch_px} px)")
        _check_transformer("model.cmr", self.dim, self.depth, self.heads, self.mlp_ratio)

    @property
    def patch_dim(self) -> int:
        """Pixels in one tubelet: in_slices x tubelet_frames x patch_px x patch_px."""
        return self.in_slices * self.tubelet_frames * self.patch_px ** 2

    def parameter_count(self) -> int:
        """Parameters of ``CmrEncoder(self)``: patch, time and space embeddings, the stack, two norms."""
        positions = self.n_frames // self.tubelet_frames + (self.image_px // self.patch_px) ** 2
        embeddings = (self.patch_dim + 1 + positions) * self.dim
        return embeddings + _stack_parameters(self.dim, self.depth, self.mlp_ratio) + 4 * self.dim


@dataclass(frozen=True)
class ModelConfig:
    """Both encoders and the projection size; refused when the model would pass ``MAX_MODEL_PARAMETERS``."""

    ecg: EcgEncoderConfig = field(default_factory=EcgEncoderConfig)
    cmr: CmrEncoderConfig = field(default_factory=CmrEncoderConfig)
    embed_dim: int = 64  # projection size d, shared by the global and local losses

    def __post_init__(self) -> None:
        for name, kind in (("ecg", EcgEncoderConfig), ("cmr", CmrEncoderConfig)):
            if not isinstance(getattr(self, name), kind):
                raise ValueError(f"model.{name} must be a {kind.__name__}, got {getattr(self, name)!r}")
        check_number("model.embed_dim", self.embed_dim, integer=True, minimum=1)
        count = self.parameter_count()
        if count > MAX_MODEL_PARAMETERS:
            raise ValueError(f"the model would have {count:,} parameters (ECG encoder {self.ecg.parameter_count():,}, "
                             f"CMR encoder {self.cmr.parameter_count():,}), more than the {MAX_MODEL_PARAMETERS:,} a "
                             "config may describe")

    def parameter_count(self) -> int:
        """Parameters of ``PTACLModel(self)`` and, at most, an MAE decoder on either encoder (an upper bound for
        the size check: the count of the model a run trains, to within the decoder)."""
        heads = sum(dim * dim + dim + dim * self.embed_dim + self.embed_dim for dim in (self.ecg.dim, self.cmr.dim))
        decoder = max(2 * encoder.dim * MAE_DECODER_DIM + 3 * MAE_DECODER_DIM + (MAE_DECODER_DIM + 1) * encoder.patch_dim
                      for encoder in (self.ecg, self.cmr)) + _stack_parameters(MAE_DECODER_DIM, 1, MAE_DECODER_MLP_RATIO)
        return self.ecg.parameter_count() + self.cmr.parameter_count() + heads + decoder

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        """The config a dict holds (a checkpoint's, a config file's); an unknown key or a value out of range is a
        ValueError naming it."""
        values = check_keys("model", values, cls)
        return cls(ecg=EcgEncoderConfig(**check_keys("model.ecg", values.get("ecg", {}), EcgEncoderConfig)),
                   cmr=CmrEncoderConfig(**check_keys("model.cmr", values.get("cmr", {}), CmrEncoderConfig)),
                   embed_dim=values.get("embed_dim", 64))


# The tiny model before issue 11 (600 ECG tokens of 1 lead x 200 ms, 400 cine tubelets of 12 px): the baseline row of
# ``benchmarks/train_step.py``, kept so both are measured in the same run; not a preset of the trainer.
TINY_V1 = ModelConfig(ecg=EcgEncoderConfig(patch_samples=50, n_times=50, token_leads=1, heads=4),
                      cmr=CmrEncoderConfig(tubelet_frames=1, patch_px=12, n_frames=25, heads=4))

MODEL_PRESETS: dict[str, ModelConfig] = {
    # CPU, minutes: matches the `tiny` preprocessing preset (250 Hz x 10 s, 24 frames of 48 px). 100 ECG tokens of
    # 12 leads x 100 ms and 48 cine tubelets of 2 x 24 x 24 px, 2 heads of 32 (``benchmarks/train_step.py``: >= 10x
    # the pairs/s of the former 600 tokens of 1 lead x 200 ms and 400 tubelets of 12 px with 4 heads, ``TINY_V1``).
    "tiny": ModelConfig(),
    # Matches the `default` preprocessing preset (500 Hz x 10 s, 50 frames of 64 px).
    # GPU, ViT-B class: 250 ECG tokens of 12 leads x 40 ms (K = 16 bins: >= 40 ms for RR >= 0.64 s).
    # the tiny preset with a 1-D ResNet ECG encoder (one feature per ViT token, centred on it; ``EcgResNet``)
    "tiny_resnet": ModelConfig(ecg=EcgEncoderConfig(architecture="resnet")),
    "paper": ModelConfig(
        ecg=EcgEncoderConfig(patch_samples=20, n_times=250, token_leads=12, dim=768, depth=12, heads=12, mlp_ratio=4.0),
        cmr=CmrEncoderConfig(tubelet_frames=2, patch_px=8, n_frames=50, image_px=64, dim=768, depth=12, heads=12,
                              mlp_ratio=4.0),
        embed_dim=256,
    ),
}


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, N, D) -> (B, N, D)."""
        batch, tokens, dim = x.shape
        q, k, v = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, D / heads)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TransformerStack(nn.ModuleList):
    """``depth`` pre-norm blocks applied in order (no final norm); the stack both encoders share in design.
    A ModuleList, so the parameters are named ``blocks.<i>.…`` as before."""

    def __init__(self, dim: int, depth: int, heads: int, mlp_ratio: float):
        super().__init__(Block(dim, heads, mlp_ratio) for _ in range(depth))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, N, D)."""
        for block in self:
            tokens = block(tokens)
        return tokens


def sincos_embedding(positions: int, dim: int, scale: float = 0.02) -> torch.Tensor:
    """1-D sine-cosine embedding (positions, dim), the initial value of the learnable ones. Scaled down
    (like ViT's 0.02 init) so that the signal, not the position, dominates the first tokens: ECGs in mV
    embed to small vectors, and unit-amplitude positions would hide the differences between patients."""
    position = torch.arange(positions, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    embedding = torch.zeros(positions, dim)
    embedding[:, 0::2] = torch.sin(position * frequency)
    embedding[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return scale * embedding


def resize_embedding_1d(embedding: torch.Tensor, length: int) -> torch.Tensor:
    """(P, D) -> (length, D) by linear interpolation: a checkpoint runs on other signal lengths / frame counts."""
    if embedding.shape[0] == length:
        return embedding
    return F.interpolate(embedding.T[None], size=length, mode="linear", align_corners=True)[0].T


def resize_embedding_2d(embedding: torch.Tensor, side: int) -> torch.Tensor:
    """(P*P, D) -> (side*side, D) by bilinear interpolation of the grid."""
    old = int(round(math.sqrt(embedding.shape[0])))
    if old == side:
        return embedding
    grid = embedding.T.reshape(1, -1, old, old)
    return F.interpolate(grid, size=(side, side), mode="bilinear", align_corners=True)[0].reshape(-1, side * side).T


class EcgEncoder(nn.Module):
    """ViT over (lead x time) patches of ``token_leads`` x ``patch_samples`` samples."""

    def __init__(self, config: EcgEncoderConfig):
        super().__init__()
        self.config = config  # its sizes checked by EcgEncoderConfig
        self.lead_groups = config.n_leads // config.token_leads
        self.patch_dim = config.patch_dim
        self.patch_embed = nn.Linear(self.patch_dim, config.dim)
        self.lead_embed = nn.Parameter(torch.zeros(self.lead_groups, config.dim))
        self.time_embed = nn.Parameter(sincos_embedding(config.n_times, config.dim))
        nn.init.normal_(self.lead_embed, std=0.02)
        self.blocks = TransformerStack(config.dim, config.depth, config.heads, config.mlp_ratio)
        self.norm = nn.LayerNorm(config.dim)
        self.pool_norm = nn.LayerNorm(config.dim)  # MAE's fc_norm: normalise the mean, not the tokens before it

    def patchify(self, ecg: torch.Tensor) -> torch.Tensor:
        """(B, leads, L) -> (B, G, n_times, token_leads * patch_samples), G = leads / token_leads lead groups
        (lead-major within a patch); a tail shorter than a patch is dropped."""
        batch, leads, length = ecg.shape
        if leads != self.config.n_leads:
            raise ValueError(f"the ECG encoder expects {self.config.n_leads} leads, got {leads}")
        size, group = self.config.patch_samples, self.config.token_leads
        n_times = length // size
        patches = ecg[:, :, : n_times * size].reshape(batch, self.lead_groups, group, n_times, size)
        return patches.permute(0, 1, 3, 2, 4).reshape(batch, self.lead_groups, n_times, group * size)

    def token_times_s(self, length: int, fs: float, device=None) -> torch.Tensor:
        """Centre (seconds) of each time patch, (n_times,)."""
        n_times = length // self.config.patch_samples
        return (torch.arange(n_times, device=device, dtype=torch.float32) + 0.5) * self.config.patch_samples / fs

    def positions(self, n_times: int) -> torch.Tensor:
        """Lead-group + time embedding of every token, (G * n_times, D)."""
        return (self.lead_embed[:, None, :] + resize_embedding_1d(self.time_embed, n_times)[None]).flatten(0, 1)

    def embed(self, ecg: torch.Tensor) -> torch.Tensor:
        """(B, leads, L) -> (B, G * n_times, D) with lead-group and time embeddings added."""
        patches = self.patchify(ecg)
        return self.patch_embed(patches).flatten(1, 2) + self.positions(patches.shape[2])[None]

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Transformer blocks (no final norm): (B, N, D) -> (B, N, D)."""
        return self.blocks(tokens)

    def forward(self, ecg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ecg (B, leads, L) -> tokens (B, G, n_times, D), pooled (B, D)."""
        hidden = self.encode(self.embed(ecg))
        pooled = self.pool_norm(hidden.mean(dim=1))
        return self.norm(hidden).reshape(ecg.shape[0], self.lead_groups, -1, self.config.dim), pooled


class CmrEncoder(nn.Module):
    """ViT over tubelets of ``tubelet_frames`` x ``patch_px`` x ``patch_px``: a linear embedding of each tubelet's
    pixels (the same map as a strided Conv3d, computed as one matrix product: faster on CPU)."""

    def __init__(self, config: CmrEncoderConfig):
        super().__init__()
        self.config = config  # its sizes checked by CmrEncoderConfig
        self.patch_dim = config.patch_dim
        self.patch_embed = nn.Linear(self.patch_dim, config.dim)
        self.time_embed = nn.Parameter(sincos_embedding(config.n_frames // config.tubelet_frames, config.dim))
        side = config.image_px // config.patch_px
        self.space_embed = nn.Parameter(torch.zeros(side * side, config.dim))
        nn.init.normal_(self.space_embed, std=0.02)
        self.blocks = TransformerStack(config.dim, config.depth, config.heads, config.mlp_ratio)
        self.norm = nn.LayerNorm(config.dim)
        self.pool_norm = nn.LayerNorm(config.dim)

    def _as_5d(self, cmr: torch.Tensor) -> torch.Tensor:
        return cmr.unsqueeze(1) if cmr.ndim == 4 else cmr  # (B, Z, T, S, S)

    def patchify(self, cmr: torch.Tensor) -> torch.Tensor:
        """(B, [Z,] T, S, S) -> (B, T', S', Z * t * p * p) pixel targets for the MAE."""
        cmr = self._as_5d(cmr)
        batch, slices, frames, size, _ = cmr.shape
        t, p = self.config.tubelet_frames, self.config.patch_px
        x = cmr.reshape(batch, slices, frames // t, t, size // p, p, size // p, p)
        return x.permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(batch, frames // t, (size // p) ** 2, slices * t * p * p)

    def positions(self, times: int, side: int) -> torch.Tensor:
        """Time + space embedding of every token, (T' * S', D)."""
        time = resize_embedding_1d(self.time_embed, times)[:, None, :]
        return (time + resize_embedding_2d(self.space_embed, side)[None]).flatten(0, 1)

    def embed(self, cmr: torch.Tensor) -> torch.Tensor:
        """-> (B, T' * S', D) with time and space embeddings added."""
        patches = self.patchify(cmr)  # (B, T', S', Z * t * p * p)
        times, side = patches.shape[1], int(round(math.sqrt(patches.shape[2])))
        return self.patch_embed(patches).flatten(1, 2) + self.positions(times, side)[None]

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Transformer blocks (no final norm): (B, N, D) -> (B, N, D)."""
        return self.blocks(tokens)

    def forward(self, cmr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cmr (B, [Z,] T, S, S) -> tokens (B, T', S', D), pooled (B, D)."""
        cmr = self._as_5d(cmr)
        times = cmr.shape[2] // self.config.tubelet_frames
        hidden = self.encode(self.embed(cmr))
        pooled = self.pool_norm(hidden.mean(dim=1))
        return self.norm(hidden).reshape(cmr.shape[0], times, -1, self.config.dim), pooled


def _group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm, not BatchNorm: a contrastive batch must not share statistics across its patients."""
    return nn.GroupNorm(math.gcd(8, channels), channels)


class ResidualBlock1d(nn.Module):
    """Two convolutions (kernel ``RESNET_KERNEL``) with GroupNorm and GELU, the first with ``stride``; a 1 x 1
    convolution on the shortcut when the block downsamples. (B, C, L) -> (B, C, L / stride) for L a multiple."""

    def __init__(self, channels: int, stride: int = 1):
        super().__init__()
        padding = RESNET_KERNEL // 2
        self.conv1 = nn.Conv1d(channels, channels, RESNET_KERNEL, stride=stride, padding=padding, bias=False)
        self.norm1 = _group_norm(channels)
        self.conv2 = nn.Conv1d(channels, channels, RESNET_KERNEL, padding=padding, bias=False)
        self.norm2 = _group_norm(channels)
        self.shortcut = (nn.Sequential(nn.Conv1d(channels, channels, 1, stride=stride, bias=False), _group_norm(channels))
                         if stride > 1 else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.gelu(self.norm1(self.conv1(x)))
        return F.gelu(self.norm2(self.conv2(out)) + self.shortcut(x))


class EcgResNet(nn.Module):
    """1-D ResNet over the 12 leads (the strongest family of ECG encoders on PTB-XL benchmarks), laid out as the
    ViT's tokens: the signal is cut to a multiple of ``patch_samples`` (P) and shifted left by P // 2 samples (zeros
    after the end), and the strides (``resnet_strides``) multiply to P, so there is one output position per P samples
    and position t's receptive field (odd kernels, symmetric padding) is centred on sample t * P + P // 2, the
    centre of the ViT's token t (to half a sample for odd P): ``token_times_s`` gives those centres, and the local
    loss and the phase geometry bin them as they bin the ViT's. ecg (B, 12, L) -> tokens (B, 1, L // P, D), pooled
    (B, D)."""

    def __init__(self, config: EcgEncoderConfig):
        super().__init__()
        self.config = config
        self.lead_groups = 1
        dim = config.dim
        self.stem = nn.Sequential(nn.Conv1d(config.n_leads, dim, RESNET_STEM_KERNEL, padding=RESNET_STEM_KERNEL // 2,
                                            bias=False), _group_norm(dim), nn.GELU())
        self.blocks = nn.Sequential(*[ResidualBlock1d(dim, stride) for stride in resnet_strides(config.patch_samples)],
                                    *[ResidualBlock1d(dim) for _ in range(config.depth)])
        self.norm = nn.LayerNorm(dim)
        self.pool_norm = nn.LayerNorm(dim)

    def token_times_s(self, length: int, fs: float, device=None) -> torch.Tensor:
        """Centre (seconds) of each output position's receptive field, (t * P + P // 2) / fs, (L // P,)."""
        size = self.config.patch_samples
        return (torch.arange(length // size, device=device, dtype=torch.float32) * size + size // 2) / fs

    def forward(self, ecg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if ecg.shape[1] != self.config.n_leads:
            raise ValueError(f"the ECG encoder expects {self.config.n_leads} leads, got {ecg.shape[1]}")
        size = self.config.patch_samples
        cut = ecg[..., : (ecg.shape[-1] // size) * size]
        shifted = F.pad(cut[..., size // 2:], (0, size // 2))  # output t centred on sample t * P + P // 2
        hidden = self.blocks(self.stem(shifted)).transpose(1, 2)  # (B, T, D)
        pooled = self.pool_norm(hidden.mean(dim=1))
        return self.norm(hidden)[:, None], pooled


def ecg_encoder(config: EcgEncoderConfig) -> nn.Module:
    """The ECG encoder a config names: ``EcgEncoder`` (ViT) or ``EcgResNet``."""
    return EcgResNet(config) if config.architecture == "resnet" else EcgEncoder(config)


def projection_head(dim: int, embed_dim: int) -> nn.Module:
    """D -> d, shared by the global loss (pooled embedding) and the local loss (phase-bin embeddings)."""
    return nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, embed_dim))


class ContrastiveFeatures(NamedTuple):
    """What the contrastive losses see of a batch (all L2-normalised projections).

    z_ecg, z_cmr: (B, d) pooled embeddings projected by the modality's head; u_ecg, u_cmr: (B, K, d) phase-bin
    means of the tokens projected by the same heads, and mask: (B, K) bins present in both (None when the local
    term is not computed)."""

    z_ecg: torch.Tensor
    z_cmr: torch.Tensor
    u_ecg: torch.Tensor | None = None
    u_cmr: torch.Tensor | None = None
    mask: torch.Tensor | None = None


class PTACLModel(nn.Module):
    """Both encoders and their projection heads; ``phase_embeddings`` is the encode -> project chain the
    losses and the diagnostics share."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.ecg_encoder = ecg_encoder(config.ecg)
        self.cmr_encoder = CmrEncoder(config.cmr)
        self.ecg_head = projection_head(config.ecg.dim, config.embed_dim)
        self.cmr_head = projection_head(config.cmr.dim, config.embed_dim)

    def phase_embeddings(self, batch: dict, fs: float, num_bins: int | None = None) -> ContrastiveFeatures:
        """Encode a batch once and project it for the losses.

        batch: ``ecg`` (B, 12, L) at ``fs`` Hz, ``cmr`` (B, [Z,] T, S, S), ``rpeaks`` (B, R) samples, -1 padded.
        num_bins: K phase bins for the local term (None: global embeddings only).
        """
        ecg, cmr = batch["ecg"], batch["cmr"]
        ecg_tokens, ecg_pooled = self.ecg_encoder(ecg)
        cmr_tokens, cmr_pooled = self.cmr_encoder(cmr)
        z_ecg = F.normalize(self.ecg_head(ecg_pooled), dim=-1)
        z_cmr = F.normalize(self.cmr_head(cmr_pooled), dim=-1)
        if num_bins is None:
            return ContrastiveFeatures(z_ecg, z_cmr)
        times = self.ecg_encoder.token_times_s(ecg.shape[-1], fs, ecg.device)
        segments, frames, mask = phase_bin_means(ecg_tokens, times, batch["rpeaks"], fs, cmr_tokens,
                                                 self.config.cmr.tubelet_frames, cmr.shape[-3], num_bins)
        u_ecg = F.normalize(self.ecg_head(segments), dim=-1)
        u_cmr = F.normalize(self.cmr_head(frames), dim=-1)
        return ContrastiveFeatures(z_ecg, z_cmr, u_ecg, u_cmr, mask)


class MaskedAutoencoder(nn.Module):
    """Unimodal MAE around one encoder: mask tokens, encode the visible ones, reconstruct the masked
    patches with a light decoder (MSE on masked patches only).

    ECG: tokens masked independently (MMCL used 0.8). Cine: tube masking (a spatial position is masked in
    every temporal token, as in VideoMAE).
    """

    def __init__(self, encoder: EcgEncoder | CmrEncoder, mask_ratio: float = 0.75, decoder_dim: int = MAE_DECODER_DIM):
        super().__init__()
        self.encoder, self.mask_ratio = encoder, mask_ratio
        dim = encoder.config.dim
        self.is_cmr = isinstance(encoder, CmrEncoder)
        patch_dim = encoder.patch_dim
        self.decoder_embed = nn.Linear(dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(decoder_dim))
        self.decoder = Block(decoder_dim, MAE_DECODER_HEADS, MAE_DECODER_MLP_RATIO)
        self.decoder_pos = nn.Linear(dim, decoder_dim)
        self.predict = nn.Linear(decoder_dim, patch_dim)

    def _mask(self, batch: int, grid: tuple[int, int], device) -> torch.Tensor:
        """(B, N) bool, True = masked. grid = (outer, inner) token layout; tubes share the inner mask."""
        outer, inner = grid
        if self.is_cmr:
            keep = torch.rand(batch, inner, device=device).argsort(dim=1) < int(round(inner * (1 - self.mask_ratio)))
            return (~keep)[:, None, :].expand(batch, outer, inner).reshape(batch, -1)
        total = outer * inner
        keep = torch.rand(batch, total, device=device).argsort(dim=1) < int(round(total * (1 - self.mask_ratio)))
        return ~keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        target = self.encoder.patchify(x)  # ECG (B, G, n_times, P); cine (B, T', S', P)
        grid = (target.shape[1], target.shape[2])
        target = target.flatten(1, 2)
        if self.is_cmr:
            positions = self.encoder.positions(grid[0], int(round(math.sqrt(grid[1])))).detach()
        else:
            positions = self.encoder.positions(grid[1]).detach()
        embedded = self.encoder.embed(x)  # (B, N, D), positions included
        batch, tokens, dim = embedded.shape
        masked = self._mask(batch, grid, x.device)
        visible_count = int((~masked[0]).sum())
        visible = embedded[~masked].reshape(batch, visible_count, dim)
        encoded = self.encoder.norm(self.encoder.encode(visible))
        decoded = self.mask_token.expand(batch, tokens, -1).clone()
        decoded[~masked] = self.decoder_embed(encoded).reshape(-1, decoded.shape[-1])
        prediction = self.predict(self.decoder(decoded + self.decoder_pos(positions)[None]))
        error = ((prediction - target) ** 2).mean(dim=-1)
        return (error * masked).sum() / masked.sum()
