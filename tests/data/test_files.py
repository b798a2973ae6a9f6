"""``data.name = "files"``: image folders and CSV / JSON-lines tables by config."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from alphavil.cli import main
from alphavil.config import ConfigError, load_config
from alphavil.data.batching import SeparateInputData, SharedInputData
from alphavil.data.files import FilesConfig, build, split_rows, task_classes
from alphavil.methods import get_method, method_names
from alphavil.runner import execute

Image = pytest.importorskip("PIL.Image")

TRAIN = [
    "train.epochs=1",
    "train.batch_size=8",
    "train.threads=1",
    "train.channels_last=false",
    "diw.patience=2",
    "train.save_checkpoints=false",
]


def _png_folder(root: Path, classes: dict[str, int], size: tuple[int, int] = (12, 10)) -> Path:
    rng = np.random.default_rng(len(classes))
    for k, (name, n) in enumerate(classes.items()):
        (root / name).mkdir(parents=True)
        for i in range(n):
            pixels = (rng.random((*size, 3)) * 80 + 60 * k).astype("uint8")
            Image.fromarray(pixels).save(root / name / f"{i:02d}.png")
    return root


def _table(path: Path, n: int = 40, missing_every: int = 0) -> Path:
    rng = np.random.default_rng(0)
    lines = ["a,b,habitat,size"]
    for i in range(n):
        a, b = rng.normal(size=2)
        habitat = "" if missing_every and i % missing_every == 0 else ("land" if a > 0 else "sea")
        lines.append(f"{a:.3f},{b:.3f},{habitat},{2 if b > 0 else 10}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _cfg(tmp_path: Path, data_toml: str, *overrides: str):  # type: ignore[no-untyped-def]
    (tmp_path / "c.toml").write_text(data_toml)
    return load_config(tmp_path / "c.toml", [f"out_dir={str(tmp_path / 'runs')!r}", *overrides])


def _images_toml(root: Path) -> str:
    return f"""
[data]
name = "files"
image_size = [16, 16]
model = "lenet"
[[data.tasks]]
name = "pets"
kind = "images"
path = "{root / "pets"}"
[[data.tasks]]
name = "shapes"
kind = "images"
path = "{root / "shapes"}"
[train]
target = "pets"
"""


def _table_toml(path: Path, **extra: str) -> str:
    more = "".join(f"{k} = {v}\n" for k, v in extra.items())
    return f"""
[data]
name = "files"
[[data.tasks]]
name = "habitat"
kind = "table"
path = "{path}"
features = ["a", "b"]
{more}[[data.tasks]]
name = "size"
kind = "table"
path = "{path}"
features = ["a", "b"]
[train]
target = "habitat"
"""


@pytest.fixture
def pictures(tmp_path: Path) -> Path:
    root = tmp_path / "pics"
    _png_folder(root / "pets", {"dog": 12, "cat": 8})
    _png_folder(root / "shapes", {"a": 6, "b": 6, "c": 8})
    return root


def _tree_hash(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        for p in sorted(root.rglob("*"))
    }


def test_image_folders_give_resized_grayscale_tensors_and_sorted_classes(
    tmp_path: Path, pictures: Path
) -> None:
    cfg = _cfg(tmp_path, _images_toml(pictures))
    assert task_classes(cfg.data) == {"pets": ["cat", "dog"], "shapes": ["a", "b", "c"]}
    data, factory = build(cfg.data)
    assert isinstance(data, SeparateInputData)
    sizes = {s: data.num_examples(s, "pets") for s in ("train", "dev", "test")}
    assert sizes == {"train": 16, "dev": 2, "test": 2}
    x = data.examples["pets"]["train"]
    assert x.shape == (16, 1, 16, 16) and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert set(data.labels["shapes"]["train"].tolist()) <= {0, 1, 2}
    out = factory(list(data.tasks))(x[:3])
    assert out["pets"].shape == (3, 2) and out["shapes"].shape == (3, 3)


def test_rgb_and_cnn(tmp_path: Path, pictures: Path) -> None:
    cfg = _cfg(
        tmp_path,
        _images_toml(pictures),
        "data.channels=3",
        "data.model='cnn'",
        "data.image_size=[9, 7]",
    )
    data, factory = build(cfg.data)
    x = data.examples["pets"]["train"]  # type: ignore[attr-defined]
    assert x.shape == (16, 3, 9, 7)
    assert factory(list(data.tasks))(x)["pets"].shape == (16, 2)


def test_split_by_seed_is_disjoint_and_deterministic() -> None:
    a = split_rows(50, [0.8, 0.1, 0.1], 0, "t.csv")
    assert sorted(torch.cat(list(a.values())).tolist()) == list(range(50))
    assert [len(a[s]) for s in ("train", "dev", "test")] == [40, 5, 5]
    b = split_rows(50, [0.8, 0.1, 0.1], 0, "t.csv")
    assert all(torch.equal(a[s], b[s]) for s in a)
    c = split_rows(50, [0.8, 0.1, 0.1], 1, "t.csv")
    assert not torch.equal(a["dev"], c["dev"])


def test_separate_split_folders(tmp_path: Path) -> None:
    for split, n in (("train", 5), ("dev", 2), ("test", 3)):
        _png_folder(tmp_path / "p" / split, {"x": n, "y": n})
    toml = f"""
[data]
name = "files"
[[data.tasks]]
name = "p"
kind = "images"
train = "{tmp_path / "p" / "train"}"
dev = "{tmp_path / "p" / "dev"}"
test = "{tmp_path / "p" / "test"}"
[train]
target = "p"
"""
    data, _ = build(_cfg(tmp_path, toml).data)
    assert [data.num_examples(s, "p") for s in ("train", "dev", "test")] == [10, 4, 6]
    assert data.labels["p"]["dev"].tolist() == [0, 0, 1, 1]  # type: ignore[attr-defined]


def test_one_table_with_every_label_is_shared_with_numeric_class_order(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, _table_toml(_table(tmp_path / "t.csv")))
    assert task_classes(cfg.data)["size"] == ["2", "10"]  # numbers sort as numbers
    data, factory = build(cfg.data)
    assert isinstance(data, SharedInputData)
    assert data.inputs["train"].shape == (32, 2)
    assert abs(float(data.inputs["train"].mean())) < 1e-5  # standardised on train
    assert factory(list(data.tasks))(data.inputs["dev"])["size"].shape == (4, 2)


def test_missing_labels_mean_not_labelled_for_that_task(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, _table_toml(_table(tmp_path / "t.csv", n=40, missing_every=4)))
    data, _ = build(cfg.data)
    assert isinstance(data, SeparateInputData)
    total = {
        t: sum(data.num_examples(s, t) for s in ("train", "dev", "test"))
        for t in ("habitat", "size")
    }
    assert total == {"habitat": 30, "size": 40}
    assert all(int(data.labels["habitat"][s].min()) >= 0 for s in ("train", "dev", "test"))


def test_jsonl_table_and_given_classes(tmp_path: Path) -> None:
    rows = [{"a": i, "b": -i, "y": ["no", "yes"][i % 2]} for i in range(30)]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    toml = f"""
[data]
name = "files"
split = [0.6, 0.2, 0.2]
[[data.tasks]]
name = "y"
kind = "table"
path = "{path}"
features = ["a", "b"]
classes = ["yes", "no"]
[train]
target = "y"
"""
    data, _ = build(_cfg(tmp_path, toml).data)
    assert isinstance(data, SharedInputData)
    assert len(data.inputs["train"]) == 18
    x, y = data.inputs["test"], data.targets["test"]["y"]
    assert len(x) == 6 and set(y.tolist()) <= {0, 1}


def _error(tmp_path: Path, toml: str, watched: Path, *overrides: str) -> None:
    """Run the CLI on a bad config: exit 2, and ``watched`` is left as it was."""
    (tmp_path / "c.toml").write_text(toml)
    before = _tree_hash(watched)
    args = ["run", str(tmp_path / "c.toml"), f"out_dir={str(tmp_path / 'runs')!r}", "--quiet"]
    assert main([*args, *overrides]) == 2
    assert _tree_hash(watched) == before  # nothing the user owns is modified


def _bad_images(tmp_path: Path, pictures: Path, what: str) -> tuple[str, list[str]]:
    toml = _images_toml(pictures)
    if what == "missing folder":
        return toml.replace(str(pictures / "shapes"), str(pictures / "nope")), [
            "nope",
            "does not exist",
        ]
    if what == "unreadable image":
        (pictures / "pets" / "cat" / "broken.png").write_bytes(b"not a png")
        return toml, ["broken.png", "unreadable image"]
    if what == "label outside classes":
        pets = f'path = "{pictures / "pets"}"'
        edited = toml.replace(pets, pets + '\nclasses = ["cat", "cow"]')
        return edited, ["dog", "not one of the classes"]
    if what == "empty split":
        return toml, ["dev split is empty"]
    if what == "mixed kinds":
        table = 'name = "shapes"\nkind = "table"\nfeatures = ["a"]'
        return toml.replace('name = "shapes"\nkind = "images"', table), ["image and table"]
    raise AssertionError(what)


IMAGE_ERRORS = [
    "missing folder",
    "unreadable image",
    "label outside classes",
    "empty split",
    "mixed kinds",
]


@pytest.mark.parametrize("what", IMAGE_ERRORS)
def test_bad_image_folders_are_one_line_and_exit_2(
    tmp_path: Path, pictures: Path, what: str, capsys: pytest.CaptureFixture[str]
) -> None:
    toml, words = _bad_images(tmp_path, pictures, what)
    extra = ["data.split=[0.98, 0.01, 0.01]"] if what == "empty split" else []
    _error(tmp_path, toml, pictures, *extra)
    err = capsys.readouterr().err.strip()
    assert err.startswith("alphavil: error:") and "\n" not in err, err
    assert all(w in err for w in words), err
    assert not (tmp_path / "runs").exists()


TABLE_ERRORS = {
    "missing column": (
        lambda t: t.replace('["a", "b"]\n[[', '["a", "zz"]\n[['),
        ["no column 'zz'"],
    ),
    "missing file": (
        lambda t: t.replace("t.csv", "nope.csv", 1),
        ["nope.csv", "does not exist"],
    ),
    "label outside classes": (
        lambda t: t.replace(
            'features = ["a", "b"]\n[[', 'features = ["a", "b"]\nclasses = ["land", "lake"]\n[['
        ),
        ["'sea' is not one of the classes"],
    ),
    "not a number": (
        lambda t: t.replace('["a", "b"]\n[[', '["a", "habitat"]\n[['),
        ["column 'habitat' is not a number"],
    ),
    "different feature counts": (
        lambda t: t.replace('["a", "b"]\n[train]', '["a"]\n[train]'),
        ["same number of features"],
    ),
    "lenet for a table": (
        lambda t: t.replace('name = "files"', 'name = "files"\nmodel = "lenet"'),
        ["lenet"],
    ),
}


@pytest.mark.parametrize("what", sorted(TABLE_ERRORS))
def test_bad_tables_are_one_line_and_exit_2(
    tmp_path: Path, what: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    edit, words = TABLE_ERRORS[what]
    toml = edit(_table_toml(_table(folder / "t.csv")))
    _error(tmp_path, toml, folder)
    err = capsys.readouterr().err.strip()
    assert err.startswith("alphavil: error:") and "\n" not in err, err
    assert all(w in err for w in words), err


def test_an_empty_table_split_names_the_split(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, _table_toml(_table(tmp_path / "t.csv", n=8)), "data.split=[0.9, 0.0, 0.1]")
    with pytest.raises(ConfigError, match="the dev split is empty"):
        build(cfg.data)


def _stream(method: str) -> list[str]:
    return ["data.stream='joint'"] if get_method(method).needs_all_tasks_per_step else []


@pytest.mark.parametrize("method", method_names())
def test_every_method_runs_on_image_folders(tmp_path: Path, pictures: Path, method: str) -> None:
    cfg = _cfg(tmp_path, _images_toml(pictures), *TRAIN, f"train.method={method}", *_stream(method))
    assert execute(cfg, tmp_path / "run", show_progress=False)["status"] == "completed"


@pytest.mark.parametrize("method", method_names())
def test_every_method_runs_on_a_table_with_missing_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    # a relative path: the split is drawn per (data_seed, path), so an absolute tmp path would
    # draw a different split every session (one of them left the 6 dev rows all unlabelled)
    monkeypatch.chdir(tmp_path)
    toml = _table_toml(_table(Path("t.csv"), n=60, missing_every=3))
    cfg = _cfg(tmp_path, toml, *TRAIN, f"train.method={method}", *_stream(method))
    assert execute(cfg, tmp_path / "run", show_progress=False)["status"] == "completed"


@pytest.mark.parametrize("method", ["single", "alphavil"])
def test_under_a_label_budget(tmp_path: Path, pictures: Path, method: str) -> None:
    budget = ["data.budget.target=8", "data.budget.dev=4"]
    cfg = _cfg(
        tmp_path,
        _table_toml(_table(tmp_path / "t.csv", n=60)),
        *TRAIN,
        *budget,
        f"train.method={method}",
    )
    assert execute(cfg, tmp_path / "run", show_progress=False)["status"] == "completed"
    cfg = _cfg(tmp_path, _images_toml(pictures), *TRAIN, *budget, f"train.method={method}")
    assert execute(cfg, tmp_path / "run2", show_progress=False)["status"] == "completed"


def test_config_validation_is_one_line(tmp_path: Path, pictures: Path) -> None:
    with pytest.raises(ConfigError, match=r"give path .* or all of train, dev and test"):
        _cfg(tmp_path, _images_toml(pictures).replace("path =", "train =", 1))
    FilesConfig()  # fine to build; the error comes with the tasks
    with pytest.raises(ConfigError, match=r"needs \[\[data.tasks\]\]"):
        _cfg(tmp_path, '[data]\nname = "files"\n')
