"""A local Hugging Face model folder, offline: its checks (``data.hf_path``), the tokenizer and
encoder loaded from it, and tokenising texts or text pairs (the ``data.name = "text"`` dataset,
:mod:`alphavil.nlu.text_tables`). Every problem is a one-line
:class:`~alphavil.schema.ConfigError` naming ``data.hf_path``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from alphavil.schema import ConfigError

__all__ = ["TOKENIZER_FILES", "load_local", "model_folder", "tokenise"]

# what a saved tokenizer leaves in its folder (without one, AutoTokenizer may build an empty one)
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def model_folder(hf_path: str) -> str:
    """``data.hf_path`` checked: a local folder with config.json and tokenizer files."""
    if not hf_path:
        raise ConfigError(
            "data.hf_path: not set; a local Hugging Face model folder (config.json, weights "
            "and tokenizer files, as save_pretrained writes them)"
        )
    folder = Path(hf_path).expanduser()
    if not folder.exists():
        raise ConfigError(f"data.hf_path: {hf_path!r} does not exist")
    if not folder.is_dir():
        raise ConfigError(f"data.hf_path: {hf_path!r} is not a folder")
    if not (folder / "config.json").is_file():
        raise ConfigError(
            f"data.hf_path: {hf_path!r} has no config.json; point it at a folder written "
            "by save_pretrained (model and tokenizer)"
        )
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ConfigError(
            f"data.hf_path: {hf_path!r} has no tokenizer files ({', '.join(TOKENIZER_FILES)}"
            "); save the model's tokenizer there with save_pretrained"
        )
    return str(folder)


def load_local(path: str) -> tuple[Any, nn.Module]:
    """(tokenizer, encoder without its pooler) of a local model folder, offline."""
    from transformers import AutoModel, AutoTokenizer

    from alphavil.nlu.encoder import _quiet_transformers

    with _quiet_transformers():
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except Exception as err:  # transformers raises many kinds for a bad folder
            raise ConfigError(
                f"data.hf_path: cannot load a tokenizer from {path!r}: {_first_line(err)}"
            ) from None
        try:
            try:  # BERT/RoBERTa-style models: drop the unused pooler
                model = AutoModel.from_pretrained(
                    path, local_files_only=True, add_pooling_layer=False
                )
            except TypeError:
                model = AutoModel.from_pretrained(path, local_files_only=True)
        except Exception as err:
            raise ConfigError(
                f"data.hf_path: cannot load a model from {path!r}: {_first_line(err)}"
            ) from None
    if not callable(tokenizer):
        raise ConfigError(f"data.hf_path: {path!r} holds no text tokenizer")
    return tokenizer, model


def tokenise(tokenizer: Any, texts: list[tuple[str, ...]], max_length: int) -> list[dict]:
    """Token ids (and token types) of single texts or text pairs, truncated to ``max_length``."""
    if not texts:
        return []
    a = [t[0] for t in texts]
    if len(texts[0]) == 2:
        enc = tokenizer(a, [t[1] for t in texts], truncation=True, max_length=max_length)
    else:
        enc = tokenizer(a, truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "token_type_ids") if k in enc]
    return [{k: list(enc[k][i]) for k in keys} for i in range(len(a))]
