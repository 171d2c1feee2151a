"""Tensor lists for the layer kinds every architecture is made of, and their file types.

Each helper returns the `TensorSpec`s one PyTorch module holds under `prefix` (which ends
with a dot), in PyTorch shape order, so architecture modules read like the model code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .formats import GGML_TYPES, DType, TensorSpec, quantizable


def linear(prefix: str, out_features: int, in_features: int, bias: bool = True) -> list[TensorSpec]:
    specs = [TensorSpec(prefix + "weight", (out_features, in_features))]
    if bias:
        specs.append(TensorSpec(prefix + "bias", (out_features,), "zeros"))
    return specs


def conv(prefix: str, out_channels: int, in_channels: int, kernel: int, bias: bool = True) -> list[TensorSpec]:
    specs = [TensorSpec(prefix + "weight", (out_channels, in_channels, kernel, kernel))]
    if bias:
        specs.append(TensorSpec(prefix + "bias", (out_channels,), "zeros"))
    return specs


def norm(prefix: str, dim: int, bias: bool = True) -> list[TensorSpec]:
    """LayerNorm / GroupNorm / RMSNorm affine parameters: identity at start."""
    specs = [TensorSpec(prefix + "weight", (dim,), "ones")]
    if bias:
        specs.append(TensorSpec(prefix + "bias", (dim,), "zeros"))
    return specs


def typed(
    specs: Iterable[TensorSpec],
    weights: DType = "q4_0",
    exact: Mapping[str, DType] | None = None,
) -> list[tuple[TensorSpec, DType]]:
    """Give every tensor its file type.

    Linear weights get `weights` (q4_0 keeps files small and loads like a user's GGUF);
    convolutions fall back to f16 (ggml keeps conv kernels f16, and a 3x3 row cannot
    hold a 32-wide block), vectors to f32. `exact` pins types by tensor-name suffix for
    the few tensors the engine creates in a fixed type (e.g. position embeddings).
    """
    exact = dict(exact or {})
    out: list[tuple[TensorSpec, DType]] = []
    for spec in specs:
        pinned = next((t for suffix, t in exact.items() if spec.name.endswith(suffix)), None)
        out.append((spec, pinned or quantizable(spec, weights)))
    return out


def total_bytes(tensors: Iterable[tuple[TensorSpec, DType]]) -> int:
    """On-disk size of the tensor data (for sizing recipes while writing them)."""
    total = 0
    for spec, dtype in tensors:
        _, block, block_bytes = GGML_TYPES[dtype]
        total += spec.numel // block * block_bytes
    return total
