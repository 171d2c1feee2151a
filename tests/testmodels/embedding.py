"""Textual-inversion embeddings: a few token vectors in a file of their own (not a registry recipe).

The engine loads every tensor of an embedding file whose last axis is the text encoder's width
(768 for SD 1.x's CLIP ViT-L) as that many new tokens, one per row, under the name the file is given
at load time. The layouts published embeddings use, all read the same way:

- safetensors with one tensor `emb_params` of shape (vectors, width) (kohya, most recent files);
- A1111's `.pt`: {"string_to_param": {"*": tensor (vectors, width)}} in a torch zip.
"""

from __future__ import annotations

from pathlib import Path

from .formats import DType, TensorSpec, write_safetensors
from .torch_zip import write_torch_zip

SD1_WIDTH = 768


def write_embedding(path: Path, *, vectors: int = 2, width: int = SD1_WIDTH, seed: str = "qvac-embedding",
                    dtype: DType = "f32") -> Path:
    """Write a random embedding of `vectors` tokens to `path` (.safetensors, or A1111's .pt) and return it.

    Values are drawn for `seed` at about the spread of CLIP token embeddings, so two seeds give two
    different embeddings and the same seed the same bytes.
    """
    path = Path(path)
    if path.suffix == ".pt":
        # string_to_param's only entry is named "*"; the wrapper dict is what A1111 saves around it.
        spec = TensorSpec("*", (vectors, width), "small", seed=seed)
        write_torch_zip(path, [(spec, dtype)], wrapper="string_to_param")
    else:
        spec = TensorSpec("emb_params", (vectors, width), "small", seed=seed)
        write_safetensors(path, [(spec, dtype)])
    return path
