"""Small builders shared by tests."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from alphavil.config import RunConfig, load_config
from alphavil.runner import execute
from alphavil.runs import cpu_model, load_checkpoint, read_json, read_jsonl
from alphavil.training import Trainer

AS_ROOT = os.geteuid() == 0  # root ignores file permissions

TOY = [
    "data.name=toy",
    "train.target=main",
    "train.epochs=2",
    "train.batch_size=64",
    "train.channels_last=false",
    "train.optimizer={name='SGD', lr=0.1, momentum=0.9}",
]


# A toy label budget under which the toy data gives joint steps (every step a batch of each task)
TOY_BUDGET = ("data.budget.target=64", "data.budget.dev=16", "data.budget.aux=200",
              "train.batch_size=32")  # fmt: skip


# αVIL's box fit over one joint pass per epoch at the mean loss scale (the default before
# alphavil.merge, loss_scale and fit_every changed); tests of the fit's own pieces pin it
BOX_FIT = ("alphavil.merge=fit", "alphavil.loss_scale=mean", "alphavil.fit_every=1")


# The golden metrics under tests/golden/ were written on Intel Xeon hosts: there a run must match
# them to the last bit; another CPU's floating-point kernels differ in the last digits (1.7e-7
# relative on an AMD EPYC host), so there each float must match to PINNED_REL_TOL.
PINNED_ON = "Intel"
PINNED_REL_TOL = 1e-5


def assert_pinned(new: Any, old: Any, where: tuple[Any, ...]) -> None:
    """``new`` is the pinned value ``old`` (nested dicts and lists of numbers and strings): equal
    on the kind of host that pinned it, each float within ``PINNED_REL_TOL`` elsewhere."""
    if PINNED_ON in (cpu_model() or ""):
        assert new == old, where
    elif isinstance(old, dict):
        assert isinstance(new, dict) and new.keys() == old.keys(), where
        for key in old:
            assert_pinned(new[key], old[key], (*where, key))
    elif isinstance(old, list):
        assert isinstance(new, list) and len(new) == len(old), where
        for i, (a, b) in enumerate(zip(new, old, strict=True)):
            assert_pinned(a, b, (*where, i))
    elif isinstance(old, float):
        assert math.isclose(new, old, rel_tol=PINNED_REL_TOL, abs_tol=1e-12), (*where, new, old)
    else:
        assert new == old, (*where, new, old)


def mnist_required() -> bool:
    """Whether real MNIST must be there (CI sets ALPHAVIL_REQUIRE_MNIST=1 after fetching it)."""
    return os.environ.get("ALPHAVIL_REQUIRE_MNIST", "") not in ("", "0")


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    """A CLI failure as users see it: exit 2 and one line ``alphavil: error: ...`` (no
    traceback) holding every needle."""
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("alphavil: error: "), err
    assert "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def toy_config(tmp_path: Path, *overrides: str) -> RunConfig:
    """A toy-problem config writing runs under ``tmp_path``."""
    return load_config(None, [*TOY, f"out_dir={str(tmp_path)!r}", *overrides])


class _Killed(Exception):
    pass


def assert_resumes_bit_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *overrides: str
) -> None:
    """A toy run killed during epoch 2's evaluation (epoch 1 and its state on disk) and resumed
    equals an uninterrupted one: same metrics (times aside), summary, model and method state."""
    before = torch.get_num_threads()
    cfg = toy_config(tmp_path, *overrides, "train.epochs=3", "train.threads=1")
    execute(cfg, tmp_path / "full", show_progress=False)
    real, calls = Trainer.evaluate, {"n": 0}

    def dying(self: Trainer, split: str, *args: Any, **kw: Any) -> Any:
        calls["n"] += split == "test"
        if calls["n"] == 2:
            raise _Killed
        return real(self, split, *args, **kw)

    monkeypatch.setattr(Trainer, "evaluate", dying)
    with pytest.raises(_Killed):
        execute(cfg, tmp_path / "killed", show_progress=False)
    monkeypatch.setattr(Trainer, "evaluate", real)
    summary = execute(cfg, tmp_path / "killed", resume=True, show_progress=False)
    torch.set_num_threads(before)
    assert summary["resumed_after_epoch"] == 1
    assert_same_run(tmp_path / "full", tmp_path / "killed")


def assert_same_run(a: Path, b: Path) -> None:
    """Same metrics (times aside), summary and final state, bit for bit."""

    def clean(rec: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in rec.items() if not k.startswith("seconds")}

    assert [clean(r) for r in read_jsonl(a / "metrics.jsonl")] == [
        clean(r) for r in read_jsonl(b / "metrics.jsonl")
    ]
    sa, sb = read_json(a / "summary.json"), read_json(b / "summary.json")
    assert [sa[k] for k in ("best", "final_weights")] == [sb[k] for k in ("best", "final_weights")]
    ma, mb = load_checkpoint(a / "state.pt"), load_checkpoint(b / "state.pt")
    for k, v in ma["model"].items():
        assert torch.equal(v, mb["model"][k]), k
    assert _equal(ma["method"], mb["method"])


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def deny_access(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make ``os.access`` say no for ``folder`` (the read-only case that root cannot be denied
    by permissions: the library's own check is what the test reaches)."""
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == folder else real(p, mode))
