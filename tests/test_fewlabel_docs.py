"""docs/fewlabel_data.md runs as written: its configs load, its commands run, and the MultiMNIST
budget it shows has the sizes it states."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from alphavil.config import load_config
from alphavil.runs import read_json
from tests.data.test_mnist import REAL_CACHE
from tests.helpers import mnist_required
from tests.test_own_data_docs import _run

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "fewlabel_data.md"
BLOCK = re.compile(r"```(\w+)([^\n]*)\n(.*?)```", re.S)


def _blocks() -> list[tuple[str, str, str]]:
    return [(lang, info.strip(), body) for lang, info, body in BLOCK.findall(DOC.read_text())]


def test_the_pages_configs_load_and_its_commands_run(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    ran = 0
    for lang, info, body in _blocks():
        if info.startswith("file="):
            path = tmp_path / info.removeprefix("file=")
            path.write_text(body)
            cfg = load_config(path)
            assert cfg.budget is not None
        elif lang == "bash" and info.startswith("run"):
            if "needs_mnist" in info and REAL_CACHE is None:
                assert not mnist_required(), "real MNIST missing (ALPHAVIL_REQUIRE_MNIST is set)"
                continue
            for line in body.strip().splitlines():
                res = _run(line, tmp_path)
                assert res.returncode == 0, f"{line}\n{res.stderr[-2000:]}"
                ran += 1
    assert ran >= 1
    summary = read_json(tmp_path / "runs-docs" / "digits-upgrad-digit-s0" / "summary.json")
    assert list(summary["best"]) == ["digit"]  # auxiliary tasks have no dev split


def test_the_multimnist_example_says_what_it_does(tmp_path: Path) -> None:
    blocks = {info: body for _, info, body in _blocks()}
    (tmp_path / "fewlabel.toml").write_text(blocks["file=fewlabel.toml"])
    cfg = load_config(tmp_path / "fewlabel.toml")
    assert cfg.budget is not None
    assert (cfg.budget.target, cfg.budget.dev_size(), cfg.budget.aux) == (1000, 200, 10000)
    (coarse,) = cfg.extra_tasks
    assert (coarse.labels, coarse.of, coarse.by, coarse.classes) == ("coarse", "left", 2, 5)
    assert cfg.train.tasks == ["left", "left_coarse"] and cfg.train.target == "left"
