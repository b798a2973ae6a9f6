"""Multi-target regression for MT2O: Solar Flare (shipped in a registry package), SARCOS, rf1.

MT2O reports a multi-target regression experiment on an unnamed dataset (arXiv 2403.16162;
lineage suggests SARCOS or River Flow rf1, reconstruction §4.1). Neither can be fetched here, so
the default is **Solar Flare** (``source = "solar_flare"``): the UCI Solar Flare data as ``sf2``
of the Mulan multi-target regression collection (the collection rf1 comes from; Spyromitros-
Xioufis et al., Machine Learning 2016), 1,066 regions, 10 inputs (3 categorical, one-hot
encoded), 3 targets (numbers of C-, M- and X-class flares in 24 h). It ships as a 3 KB file in
the wheel of ``river`` (BSD-3-Clause) on PyPI: found in an installed ``river`` without importing
it, or read straight from a downloaded wheel (``pip download river --no-deps``;
``data.path = "river-….whl"``). Rejected: scikit-learn's Linnerud (3 targets, but 20 rows).
Caveat: the targets are sparse counts (X-class flares are non-zero in 5 rows).

Users with the files can run the lineage datasets: ``sarcos`` (``sarcos_inv.mat`` and
``sarcos_inv_test.mat``, or CSVs, 21 inputs and 7 torques; .mat needs scipy) and ``rf1``
(Mulan ``rf1.arff``, 64 inputs and the last 8 attributes as targets; '?' = missing, imputed).

Preprocessing [reconstructed]: random train/dev/test split from ``data_seed`` (dev only, when a
test file is given); inputs and targets z-scored with training statistics (PHN instead divides
SARCOS targets by their 90% quantile, which is 0 for sparse counts); missing inputs get the
training mean. Model: MLP trunk (ReLU) with one linear head per target, MSE per target.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import itertools
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from alphavil.config import bounded, choice
from alphavil.data.batching import SharedInputData
from alphavil.datasets import DatasetSpec
from alphavil.models.multihead import MultiHeadModel
from alphavil.tasks import Task

__all__ = ["SPEC", "RegressionConfig", "load_rf1", "load_sarcos", "load_solar_flare"]

SOURCES = ("solar_flare", "sarcos", "rf1")
Table = tuple[np.ndarray, np.ndarray, list[str]]  # inputs (N, d), targets (N, t), target names
_FLARE_FILE = "solar-flare.csv.zip"
_FLARE_TARGETS = ["c-class-flares", "m-class-flares", "x-class-flares"]


def _flare_bytes(path: str | Path | None) -> bytes:
    """The Solar Flare CSV, from a .csv, a .csv.zip, a river wheel or an installed river."""
    if path is None or str(path) == "":
        spec = importlib.util.find_spec("river")
        locations = list(spec.submodule_search_locations or []) if spec else []
        found = [Path(p) / "datasets" / _FLARE_FILE for p in locations]
        found = [p for p in found if p.is_file()]
        if not found:
            raise FileNotFoundError(
                "Solar Flare ships in the 'river' package: pip install river, or pip download "
                "river --no-deps and set data.path to the wheel (or to a solar-flare CSV)"
            )
        path = found[0]
    path = Path(path)
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as whl:
            inner = io.BytesIO(whl.read(f"river/datasets/{_FLARE_FILE}"))
        return zipfile.ZipFile(inner).read(zipfile.ZipFile(inner).namelist()[0])
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as z:
            return z.read(z.namelist()[0])
    return path.read_bytes()


def load_solar_flare(path: str | Path | None = None) -> Table:
    """Solar Flare (Mulan sf2): one-hot categorical + integer inputs, 3 flare-count targets."""
    rows = list(csv.reader(io.StringIO(_flare_bytes(path).decode())))
    header, body = rows[0], [r for r in rows[1:] if r]
    missing = [t for t in _FLARE_TARGETS if t not in header]
    if missing:
        raise ValueError(f"not a Solar Flare CSV: columns {missing} are missing")
    target_idx = [header.index(t) for t in _FLARE_TARGETS]
    columns = []
    for j, _ in enumerate(header):
        if j in target_idx:
            continue
        values = [r[j] for r in body]
        try:
            columns.append(np.array(values, dtype=float)[:, None])
        except ValueError:  # categorical: one-hot over the sorted categories
            cats = sorted(set(values))
            columns.append(np.array([[v == c for c in cats] for v in values], dtype=float))
    y = np.array([[float(r[j]) for j in target_idx] for r in body])
    return np.concatenate(columns, axis=1), y, list(_FLARE_TARGETS)


def _read_matrix(path: str | Path) -> np.ndarray:
    path = Path(path)
    if path.suffix == ".mat":
        from scipy.io import loadmat  # optional dependency: pip install scipy

        arrays = [v for k, v in loadmat(path).items() if not k.startswith("__")]
        if len(arrays) != 1:
            raise ValueError(f"{path}: expected one matrix, found {len(arrays)}")
        return np.asarray(arrays[0], dtype=float)
    text = path.read_text().splitlines()
    skip = 0 if re.match(r"^\s*[-+0-9.eE]", text[0]) else 1  # optional header row
    return np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2)


def load_sarcos(path: str | Path) -> Table:
    """A SARCOS inverse-dynamics file (.mat or .csv, 28 columns): 21 inputs, 7 torques."""
    m = _read_matrix(path)
    if m.shape[1] != 28:
        raise ValueError(f"{path}: SARCOS has 28 columns (21 inputs, 7 torques), got {m.shape}")
    return m[:, :21], m[:, 21:], [f"tau{i}" for i in range(1, 8)]


def arff_attributes(path: str | Path) -> list[str]:
    """Attribute names of an ARFF file, in order (reads only the header)."""
    names = []
    with open(path) as f:
        for line in f:
            s = line.strip()
            if s.lower().startswith("@attribute"):
                names.append(s.split(None, 2)[1].strip("'\""))
            elif s.lower().startswith("@data"):
                break
    return names


def load_rf1(path: str | Path, n_targets: int = 8) -> Table:
    """River Flow rf1 (Mulan ARFF, numeric attributes; the last ``n_targets`` are targets)."""
    names = arff_attributes(path)
    rows = []
    with open(path) as f:
        in_data = False
        for line in f:
            s = line.strip()
            if not s or s.startswith("%"):
                continue
            if in_data:
                rows.append([np.nan if v.strip() == "?" else float(v) for v in s.split(",")])
            in_data = in_data or s.lower().startswith("@data")
    m = np.array(rows, dtype=float)
    if m.ndim != 2 or m.shape[1] != len(names) or not 0 < n_targets < len(names):
        raise ValueError(f"{path}: {m.shape} values for {len(names)} attributes")
    return m[:, :-n_targets], m[:, -n_targets:], names[-n_targets:]


@dataclass
class RegressionConfig:
    """``[data]`` table of ``name = "regression"``."""

    source: str = choice("solar_flare", *SOURCES)
    path: str = ""  # solar_flare: "" = installed river (or a wheel/CSV); sarcos/rf1: required
    test_path: str = ""  # separate test file (sarcos_inv_test.mat); else a random split
    data_seed: int = 0
    dev_fraction: float = bounded(0.2, 0.0, 1.0, lo_open=True)
    test_fraction: float = bounded(0.2, 0.0, 1.0, lo_open=True)
    n_targets: int = bounded(8, 1)  # rf1 only
    hidden: list[int] = field(default_factory=lambda: [64, 64])


def _load(cfg: RegressionConfig, path: str) -> Table:
    if cfg.source == "solar_flare":
        return load_solar_flare(path or None)
    if not path:
        raise ValueError(f"data.path is required for source {cfg.source!r}")
    return load_sarcos(path) if cfg.source == "sarcos" else load_rf1(path, cfg.n_targets)


def _task_name(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_-]", "_", name)


def regression_tasks(cfg: RegressionConfig) -> list[Task]:
    """One MSE task per target (names from the source; rf1 reads its ARFF header)."""
    if cfg.source == "solar_flare":
        names = _FLARE_TARGETS
    elif cfg.source == "sarcos":
        names = [f"tau{i}" for i in range(1, 8)]
    else:
        names = arff_attributes(cfg.path)[-cfg.n_targets :] if cfg.path else []
    return [Task(_task_name(n), 1, "regression") for n in names]


def build_regression(cfg: RegressionConfig) -> tuple[SharedInputData, Callable[[], nn.Module]]:
    """Load, split, standardise; an MLP with one head per target."""
    x, y, _ = _load(cfg, cfg.path)
    rng = np.random.default_rng(cfg.data_seed)
    if cfg.test_path:
        x_test, y_test, _ = _load(cfg, cfg.test_path)
        perm = rng.permutation(len(x))
        n_dev = max(1, round(cfg.dev_fraction * len(x)))
        parts = {
            "dev": (x[perm[:n_dev]], y[perm[:n_dev]]),
            "train": (x[perm[n_dev:]], y[perm[n_dev:]]),
            "test": (x_test, y_test),
        }
    else:
        perm = rng.permutation(len(x))
        n_test = max(1, round(cfg.test_fraction * len(x)))
        n_dev = max(1, round(cfg.dev_fraction * len(x)))
        idx = {
            "test": perm[:n_test],
            "dev": perm[n_test : n_test + n_dev],
            "train": perm[n_test + n_dev :],
        }
        parts = {s: (x[i], y[i]) for s, i in idx.items()}
    x_tr, y_tr = parts["train"]
    x_mean = np.nanmean(x_tr, axis=0)
    x_std = np.nan_to_num(np.nanstd(x_tr, axis=0), nan=1.0)
    x_mean, x_std = np.nan_to_num(x_mean), np.where(x_std > 0, x_std, 1.0)
    y_mean, y_std = y_tr.mean(axis=0), y_tr.std(axis=0)
    y_std = np.where(y_std > 0, y_std, 1.0)
    tasks = regression_tasks(cfg)
    inputs, targets = {}, {}
    for split, (xs, ys) in parts.items():
        xs = np.where(np.isnan(xs), x_mean, xs)
        inputs[split] = torch.tensor((xs - x_mean) / x_std, dtype=torch.float32)
        z = torch.tensor((ys - y_mean) / y_std, dtype=torch.float32)
        targets[split] = {t.name: z[:, i].contiguous() for i, t in enumerate(tasks)}
    widths = [x.shape[1], *cfg.hidden]

    def make_model() -> nn.Module:
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(widths):
            layers += [nn.Linear(a, b), nn.ReLU()]
        return MultiHeadModel(
            nn.Sequential(*layers), {t.name: nn.Linear(widths[-1], 1) for t in tasks}
        )

    return SharedInputData(tasks, inputs, targets), make_model


SPEC = DatasetSpec(config=RegressionConfig, tasks=regression_tasks, build=build_regression)
