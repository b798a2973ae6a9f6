"""Label budgets: disjoint target train / dev / auxiliary pools drawn per data seed, sizes, full
test, labels (derived tasks included), separate-example data, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from alphavil.cli import main
from alphavil.config import ConfigError
from alphavil.data.batching import SeparateInputData, SharedInputData
from alphavil.data.budget import Budget, apply_budget
from alphavil.data.derived import coarse_labels, random_labels, with_tasks
from alphavil.runner import load_data
from alphavil.tasks import Task
from tests.helpers import toy_config

N_TRAIN = 300
BUDGET = ["data.budget.target=40", "data.budget.dev=10", "data.budget.aux=100"]


def _indexed() -> SharedInputData:
    """Inputs that name their example: train row i is (i,), dev rows are -1, test rows 10000+i;
    ``digit`` = i % 10, ``other`` = (i // 10) % 3."""
    inputs, targets = {}, {}
    for split, n, base in (("train", N_TRAIN, 0), ("dev", 50, -1), ("test", 80, 10000)):
        i = torch.arange(n)
        inputs[split] = (torch.full((n,), -1) if base < 0 else i + base).float().unsqueeze(1)
        targets[split] = {"digit": i % 10, "other": (i // 10) % 3}
    return SharedInputData([Task("digit", 10), Task("other", 3)], inputs, targets)


def _ids(data: SeparateInputData, task: str, split: str) -> list[int]:
    return [int(v) for v in data.examples[task][split][:, 0]]


def test_pools_are_disjoint_sized_and_labelled_and_test_stays_whole() -> None:
    base = with_tasks(_indexed(), [(Task("half", 5), coarse_labels("digit", 2))])
    data = apply_budget(base, Budget(target=40, dev=10, aux=100), "digit", seed=0)
    train, dev, pool = (
        _ids(data, "digit", "train"),
        _ids(data, "digit", "dev"),
        _ids(data, "other", "train"),
    )
    assert (len(train), len(dev), len(pool)) == (40, 10, 100)
    assert len(set(train) | set(dev) | set(pool)) == 150  # disjoint
    assert all(0 <= i < N_TRAIN for i in train + dev + pool)  # the original dev split is unused
    assert _ids(data, "half", "train") == pool  # auxiliary tasks share one pool
    assert data.labels["digit"]["train"].tolist() == [i % 10 for i in train]
    assert data.labels["digit"]["dev"].tolist() == [i % 10 for i in dev]
    assert data.labels["other"]["train"].tolist() == [(i // 10) % 3 for i in pool]
    assert data.labels["half"]["train"].tolist() == [(i % 10) // 2 for i in pool]  # coarse
    for t in ("other", "half"):
        assert data.num_examples("dev", t) == 0
    for t in ("digit", "other", "half"):
        assert _ids(data, t, "test") == list(range(10000, 10080))
        assert data.labels[t]["test"].tolist() == base.targets["test"][t].tolist()
    assert data.stream == "joint"


def test_defaults_dev_is_a_fifth_and_aux_is_the_rest() -> None:
    data = apply_budget(_indexed(), Budget(target=50), "digit", seed=1)
    sizes = [
        data.num_examples(s, t)
        for t, s in (("digit", "train"), ("digit", "dev"), ("other", "train"))
    ]
    assert sizes == [50, 10, N_TRAIN - 60]


def _pools(tmp_path: Path, *overrides: str) -> list[list[float]]:
    data, _ = load_data(toy_config(tmp_path, *BUDGET, *overrides))
    assert isinstance(data, SeparateInputData)
    pools = [("main", "train"), ("main", "dev"), ("helper", "train")]
    return [data.examples[t][s][:, 0].tolist() for t, s in pools]


def test_pools_depend_on_the_data_seed_only(tmp_path: Path) -> None:
    base = _pools(tmp_path)
    for other in (["train.method=single", "train.seed=7"], ["train.method=upgrad"]):
        assert _pools(tmp_path, *other) == base
    assert _pools(tmp_path, "data.data_seed=1") != base
    assert _pools(tmp_path, "data.budget.seed=5") != base


def test_draw_by_train_seed_pairs_methods_and_varies_with_the_seed(tmp_path: Path) -> None:
    draw = "data.budget.draw=train_seed"
    base = _pools(tmp_path, draw, "train.seed=3")
    assert _pools(tmp_path, draw, "train.seed=3", "train.method=upgrad") == base
    assert _pools(tmp_path, draw, "train.seed=4") != base
    assert _pools(tmp_path, draw, "train.seed=3") != _pools(tmp_path, "train.seed=3")


def test_random_and_coarse_tasks_are_labelled_on_the_pool(tmp_path: Path) -> None:
    extra = "data.extra_tasks=[{name='junk', labels='random', classes=4}, " \
        "{name='coarse', labels='coarse', of='junk', by=2}]"  # fmt: skip
    data, make_model = load_data(toy_config(tmp_path, *BUDGET, extra))
    assert isinstance(data, SeparateInputData)
    full = random_labels(4, 0, "junk")("train", {}, torch.arange(512))
    pool = data.examples["junk"]["train"]
    assert data.num_examples("train", "junk") == 100 and data.num_examples("dev", "junk") == 0
    assert torch.equal(data.labels["coarse"]["train"], data.labels["junk"]["train"] // 2)
    assert torch.equal(data.examples["coarse"]["train"], pool)
    assert int(full.bincount(minlength=4).min()) > 0
    assert make_model().heads["coarse"].out_features == 2  # type: ignore[index]


def test_separate_example_data_keeps_each_tasks_own_examples() -> None:
    examples = {
        "t": {"train": list(range(30)), "dev": [-1] * 5, "test": [100, 101]},
        "a": {"train": list(range(200, 220)), "dev": [-1] * 5, "test": [300]},
        "b": {"train": list(range(400, 405)), "dev": [-1] * 5, "test": [500]},
    }
    labels = {
        t: {s: torch.zeros(len(v), dtype=torch.long) for s, v in e.items()}
        for t, e in examples.items()
    }
    data = SeparateInputData([Task(t, 2) for t in examples], examples, labels, torch.tensor)
    out = apply_budget(data, Budget(target=10, dev=4, aux=8), "t", seed=0)
    t_train, t_dev = out.examples["t"]["train"], out.examples["t"]["dev"]
    assert (len(t_train), len(t_dev)) == (10, 4) and not set(t_train) & set(t_dev)
    assert set(t_train + t_dev) <= set(range(30))
    assert len(out.examples["a"]["train"]) == 8 and set(out.examples["a"]["train"]) <= set(
        range(200, 220)
    )
    assert sorted(out.examples["b"]["train"]) == list(range(400, 405))  # capped at its own 5
    assert out.num_examples("dev", "a") == 0 and out.examples["a"]["test"] == [300]
    g = torch.Generator().manual_seed(0)
    step = next(iter(out.train_stream(["t", "a", "b"], batch_size=4, generator=g)))
    assert step.inputs.shape == (12,)  # type: ignore[union-attr]  # one collate of all rows
    with pytest.raises(ConfigError, match=r"target \+ dev = 25 \+ 6, but task 't' has 30"):
        apply_budget(data, Budget(target=25, dev=6), "t", seed=0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.budget.target=0"], r"^data\.budget\.target: must be >= 1, got 0$"),
        (["data.budget.dev=3"], r"^data\.budget\.target: missing"),
        (["data.budget.target=3"], r"^data\.budget\.dev: target = 3 leaves target // 5 = 0"),
        (["data.budget.target=10", "data.budget.aux=-1"], r"aux: must be >= 0, got -1"),
        (["data.budget.target=10", "data.budget.colour=1"], r"unknown key 'data\.budget\.colour'"),
        (["data.budget=5"], r"^data\.budget: expected a table"),
        (["data.budget.target=10", "train.method=mt2o"], "does not run under a label budget"),
        (["data.budget.target=10", "train.method=multitask", "train.target=nope"],
         "'nope' is not a task"),
        (["data.stream=sideways"],
         r"^data\.stream: 'sideways' is not one of auto, joint, interleaved$"),
    ],
)  # fmt: skip
def test_bad_budgets_are_one_line_config_errors(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        toy_config(tmp_path, *overrides)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.budget.target=500", "data.budget.aux=100"],
         r"500 \+ 100 \+ 100, but the data has 512"),
        (["data.budget.target=500", "data.budget.dev=12"],
         r"500 \+ 12 \+ the rest \(0\), but the data has 512"),
        (["data.stream=interleaved"], "only \"joint\" \\(or \"auto\"\\) applies"),
    ],
)  # fmt: skip
def test_budgets_the_data_cannot_hold_are_one_line_errors(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        load_data(toy_config(tmp_path, *overrides))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "override",
    [
        "data.budget.target=0",
        "data.budget.target=600",
        "data.extra_tasks=[{name='c', labels='coarse', of='x'}]",
    ],
)
def test_the_cli_exits_2_with_one_line(
    tmp_path: Path, override: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "toy.toml").write_text('[data]\nname = "toy"\n\n[train]\ntarget = "main"\n')
    args = [
        "run",
        str(tmp_path / "toy.toml"),
        override,
        "--run-dir",
        str(tmp_path / "r"),
        "--quiet",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("alphavil: error: ") and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_config_json_records_the_budget_and_omits_it_otherwise(tmp_path: Path) -> None:
    cfg = toy_config(tmp_path, *BUDGET)
    assert cfg.to_dict()["data"]["budget"] == {
        "target": 40, "dev": 10, "aux": 100, "seed": -1, "draw": "data_seed"
    }  # fmt: skip
    plain = toy_config(tmp_path).to_dict()["data"]
    assert "budget" not in plain and "stream" not in plain
    noise = toy_config(tmp_path, "data.extra_tasks=[{name='n', labels='random'}]")
    assert set(noise.to_dict()["data"]["extra_tasks"][0]) == {"name", "labels", "classes", "kind"}
