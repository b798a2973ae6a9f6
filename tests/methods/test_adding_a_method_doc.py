"""The worked example in docs/adding_a_method.md is a working method."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

from alphavil.config import ConfigError
from alphavil.data.toy import TASKS as TOY_TASKS
from alphavil.methods import REGISTRY, SECTIONS
from alphavil.runner import execute
from alphavil.runs import read_jsonl
from tests.helpers import TOY, toy_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "adding_a_method.md"


@pytest.fixture
def fixedaux(monkeypatch: pytest.MonkeyPatch) -> None:
    """The doc's example module, imported as ``fixedaux`` and registered."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    code = next(b for b in blocks if "class FixedAux" in b)
    module = types.ModuleType("fixedaux")
    monkeypatch.setitem(sys.modules, "fixedaux", module)
    exec(compile(code, str(DOC), "exec"), module.__dict__)
    monkeypatch.setitem(REGISTRY, "fixedaux", "fixedaux:FixedAux")
    monkeypatch.setitem(SECTIONS, "fixedaux", "fixedaux:FixedAuxConfig")


@pytest.mark.usefixtures("fixedaux")
def test_the_example_weights_auxiliary_tasks(tmp_path: Path) -> None:
    cfg = toy_config(tmp_path, "train.method=fixedaux", "fixedaux.aux_weight=0.25")
    execute(cfg, tmp_path / "run", show_progress=False)
    rec = read_jsonl(tmp_path / "run" / "metrics.jsonl")[-1]
    target = cfg.train.target
    assert rec["weights"][target] == 1.0
    assert {w for t, w in rec["weights"].items() if t != target} == {0.25}


@pytest.mark.usefixtures("fixedaux")
def test_the_example_at_weight_one_is_multitask_at_one_tth_the_lr(tmp_path: Path) -> None:
    """Sum of T losses at lr η/T = mean of the losses at lr η (SGD with momentum is linear)."""
    probe = toy_config(tmp_path, "train.method=multitask")
    n = len(TOY_TASKS)
    ours = toy_config(
        tmp_path,
        "train.method=fixedaux",
        "fixedaux.aux_weight=1.0",
        f"train.optimizer={{name='SGD', lr={0.1 / n}, momentum=0.9}}",
    )
    execute(ours, tmp_path / "sum", show_progress=False)
    execute(probe, tmp_path / "mean", show_progress=False)
    a = read_jsonl(tmp_path / "sum" / "metrics.jsonl")
    b = read_jsonl(tmp_path / "mean" / "metrics.jsonl")
    for ra, rb in zip(a, b, strict=True):
        for task, score in rb["dev"].items():
            assert ra["dev"][task]["loss"] == pytest.approx(score["loss"], rel=1e-4)


@pytest.mark.usefixtures("fixedaux")
def test_the_example_refuses_a_negative_weight(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="aux_weight"):
        toy_config(tmp_path, "train.method=fixedaux", "fixedaux.aux_weight=-1")


def _example_code() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    return next(b for b in blocks if "class FixedAux" in b)


@pytest.fixture
def myaux(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The doc's example saved as a user's own module ``myaux.py`` on sys.path, unregistered."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "myaux.py").write_text(_example_code())
    (src / "notamethod.py").write_text("class NotAMethod:\n    pass\n")
    monkeypatch.syspath_prepend(str(src))
    monkeypatch.delitem(sys.modules, "myaux", raising=False)
    return "myaux:FixedAux"


def test_the_example_runs_by_import_path(tmp_path: Path, myaux: str) -> None:
    assert "fixedaux" not in REGISTRY and "fixedaux" not in SECTIONS
    cfg = toy_config(tmp_path, f"train.method={myaux}", "fixedaux.aux_weight=0.25")
    assert cfg.extra["fixedaux"].aux_weight == 0.25
    assert cfg.to_dict()["fixedaux"] == {"aux_weight": 0.25}
    execute(cfg, tmp_path / "run", show_progress=False)
    rec = read_jsonl(tmp_path / "run" / "metrics.jsonl")[-1]
    assert {w for t, w in rec["weights"].items() if t != cfg.train.target} == {0.25}
    default = toy_config(tmp_path, f"train.method={myaux}")  # the table is recorded anyway
    assert default.to_dict()["fixedaux"] == {"aux_weight": 0.5}
    with pytest.raises(ConfigError, match="aux_weight"):
        toy_config(tmp_path, f"train.method={myaux}", "fixedaux.aux_weight=-1")
    with pytest.raises(ConfigError, match="unknown key 'fixedaux'"):  # only with that method
        toy_config(tmp_path, "train.method=multitask", "fixedaux.aux_weight=0.25")


@pytest.mark.usefixtures("myaux")
@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("nosuchmodule_xyz:FixedAux", "cannot import 'nosuchmodule_xyz'"),
        ("myaux:Nope", "module 'myaux' has no attribute 'Nope'"),
        ("myaux:FixedAuxConfig", "not a subclass of alphavil.methods.base.Method"),
        ("notamethod:NotAMethod", "not a subclass of alphavil.methods.base.Method"),
        (":FixedAux", "is not an import path"),
    ],
)
def test_a_bad_import_path_is_a_one_line_error(tmp_path: Path, path: str, says: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(says)) as err:
        toy_config(tmp_path, f"train.method={path}")
    assert "\n" not in str(err.value) and str(err.value).startswith("train.method: ")


def test_a_sweep_plans_an_import_path_method(tmp_path: Path, myaux: str) -> None:
    from alphavil.sweep import SweepConfig, plan

    base = [*TOY, f"out_dir={str(tmp_path)!r}"]
    jobs = plan(None, base, SweepConfig(methods=["multitask", myaux], seeds=[0]))
    ours = [job for job in jobs if job.name.startswith("myaux.FixedAux-")]
    assert ours and all(f"train.method={myaux}" in job.overrides for job in ours)
    with pytest.raises(ConfigError, match=r"sweep\.methods: train\.method: module 'myaux' has no"):
        plan(None, base, SweepConfig(methods=["myaux:Nope"]))
