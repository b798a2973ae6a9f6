"""Derived and random-label tasks; models with one head per configured task."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from alphavil.config import ConfigError, RunConfig, load_config
from alphavil.data.derived import random_labels, with_tasks
from alphavil.data.toy import ToyConfig, make_toy
from alphavil.runner import load_data
from alphavil.tasks import Task
from tests.helpers import toy_config

NOISE = "data.extra_tasks=[{name='junk', labels='random', classes=5}]"


def _labels(tmp_path: Path, *overrides: str) -> dict[str, torch.Tensor]:
    data, _ = load_data(toy_config(tmp_path, NOISE, *overrides))
    return {s: data.targets[s]["junk"] for s in ("train", "dev", "test")}  # type: ignore[attr-defined]


def test_random_labels_depend_on_the_data_seed_only(tmp_path: Path) -> None:
    base = _labels(tmp_path)
    for other in (["train.method=single", "train.seed=7"], ["train.method=multitask"]):
        again = _labels(tmp_path, *other)
        assert all(torch.equal(base[s], again[s]) for s in base)
    moved = _labels(tmp_path, "data.data_seed=1")
    assert not torch.equal(base["train"], moved["train"])
    assert not torch.equal(base["train"][:256], base["dev"])  # fixed per split, not shared
    for y in base.values():
        assert int(y.min()) >= 0 and int(y.max()) <= 4
    counts = torch.bincount(base["train"], minlength=5).float()
    assert counts.min() > 0.6 * counts.mean()  # roughly uniform


def test_models_grow_a_head_per_configured_task(tmp_path: Path) -> None:
    _, make_model = load_data(toy_config(tmp_path, NOISE))
    model = make_model()
    assert list(model.heads) == ["main", "helper", "noise", "junk"]  # type: ignore[union-attr]
    assert model.heads["junk"].out_features == 5  # type: ignore[index]
    from alphavil.models.lenet import multi_lenet

    lenet = multi_lenet([Task("left", 10), Task("right", 10), Task("odd", 2)])
    out = lenet(torch.zeros(3, 1, 28, 28), ["left", "odd"])
    assert out["odd"].shape == (3, 2) and out["left"].shape == (3, 10)


def test_nlu_model_grows_a_head_per_task() -> None:
    pytest.importorskip("transformers")
    from alphavil.nlu.encoder import nlu_model

    model = nlu_model("tiny-roberta", [Task("RTE", 2), Task("CB", 3), Task("extra", 4)])
    assert [model.heads[t][-1].out_features for t in ("RTE", "CB", "extra")] == [2, 3, 4]  # type: ignore[index]


def test_extra_tasks_train_through_the_loop(tmp_path: Path) -> None:
    from alphavil.runner import execute

    cfg = toy_config(
        tmp_path,
        NOISE,
        "data.extra_tasks=[{name='junk', classes=5}, {name='main_copy', "
        "labels='tests.data.test_derived:copy_main'}]",
        "train.method=alphavil",
        "alphavil.alpha_solver=lbfgs",
        "alphavil.weight_rule=relative",
    )
    summary = execute(cfg, tmp_path / "run", show_progress=False)
    assert summary["tasks"] == ["main", "helper", "noise", "junk", "main_copy"]
    w = summary["final_weights"]
    assert w["main"] == 1.0 and w["junk"] <= 1.0


def copy_main(split: str, targets: dict[str, torch.Tensor], index: torch.Tensor) -> torch.Tensor:
    """A label function for the test above: the main task's labels."""
    return targets["main"]


def test_with_tasks_checks_labels_and_layout() -> None:
    data = make_toy(ToyConfig())
    with pytest.raises(ValueError, match="already exists"):
        with_tasks(data, [(Task("main", 2), random_labels(2, 0, "main"))])
    with pytest.raises(ValueError, match=r"labels must be in 0\.\.1, got 0\.\.2"):
        with_tasks(data, [(Task("x", 2), lambda s, y, i: i % 3)])
    with pytest.raises(ValueError, match="shape"):
        with_tasks(data, [(Task("x", 2), lambda s, y, i: i[:5] % 2)])
    with pytest.raises(ValueError, match="integers"):
        with_tasks(data, [(Task("x", 2), lambda s, y, i: i.float())])
    both = with_tasks(data, [(Task("odd", 2), lambda s, y, i: y["main"] ^ y["helper"])])
    assert both.inputs["train"] is data.inputs["train"]  # no copy of the inputs
    with pytest.raises(ValueError, match="share their inputs"):
        with_tasks(object(), [])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.extra_tasks=[{labels='random'}]", r"data\.extra_tasks\[0\]: needs a name"),
        ("data.extra_tasks=[{name='n', classes=1}]", ">= 2 classes"),
        ("data.extra_tasks=[{name='n', labels='nope'}]", 'use "random", "coarse" or an import'),
        ("data.extra_tasks=[{name='n', labels='coarse', of='mian'}]", r"\[0\]\.of: 'mian' is not"),
        ("data.extra_tasks=[{name='n', labels='coarse'}]", r"\[0\]\.of: '' is not a task"),
        ("data.extra_tasks=[{name='n', labels='coarse', of='main', by=0}]", "by: must be >= 1"),
        ("data.extra_tasks=[{name='n', of='main'}]", 'of and by are for labels = "coarse"'),
        ("data.extra_tasks=[{name='main'}]", r"\['main'\] already exist"),
        ("data.extra_tasks=[{name='n', colour=1}]", "unknown key 'data.extra_tasks\\[0\\].colour'"),
        ("data.extra_tasks='x'", "expected a list of tables"),
    ],
)
def test_bad_extra_tasks_are_config_errors(tmp_path: Path, override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        toy_config(tmp_path, override)


def test_unimportable_label_function_is_a_config_error(tmp_path: Path) -> None:
    cfg = toy_config(tmp_path, "data.extra_tasks=[{name='n', labels='no_such_mod:fn'}]")
    with pytest.raises(ConfigError, match="cannot import labels 'no_such_mod:fn'"):
        load_data(cfg)


def test_run_config_needs_a_dataset_name() -> None:
    from alphavil.data.toy import ToyConfig

    with pytest.raises(ConfigError, match="no dataset name"):
        RunConfig(data=ToyConfig())
    cfg = load_config(None, ["data.name=toy", "train.target=main"])
    assert cfg.data_name == "toy"
