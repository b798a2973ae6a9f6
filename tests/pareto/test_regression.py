from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from alphavil.pareto.regression import (
    RegressionConfig,
    arff_attributes,
    build_regression,
    load_rf1,
    load_sarcos,
    load_solar_flare,
)

FLARE_HEADER = (
    "zurich-class,largest-spot-size,spot-distribution,activity,evolution,"
    "previous-24h-flare-activity,hist-complex,hist-complex-this-pass,area,"
    "largest-spot-area,c-class-flares,m-class-flares,x-class-flares"
)


def _flare_csv(n: int = 30) -> str:
    rng = np.random.default_rng(0)
    rows = [FLARE_HEADER]
    for _ in range(n):
        cats = [rng.choice(list("BCDH")), rng.choice(list("AXR")), rng.choice(list("OX"))]
        ints = rng.integers(1, 4, size=7).tolist() + rng.integers(0, 3, size=3).tolist()
        rows.append(",".join(map(str, cats + ints)))
    return "\n".join(rows) + "\n"


def test_solar_flare_from_csv_zip_and_wheel(tmp_path: Path) -> None:
    text = _flare_csv()
    csv_path = tmp_path / "solar-flare.csv"
    csv_path.write_text(text)
    x, y, names = load_solar_flare(csv_path)
    assert y.shape == (30, 3) and names[0] == "c-class-flares"
    assert x.shape[0] == 30 and x.shape[1] > 7  # one-hot categories + 7 integer columns
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("solar-flare.csv", text)
    zip_path = tmp_path / "solar-flare.csv.zip"
    zip_path.write_bytes(inner.getvalue())
    whl = tmp_path / "river-0.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr("river/datasets/solar-flare.csv.zip", inner.getvalue())
    for p in (zip_path, whl):
        x2, y2, _ = load_solar_flare(p)
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)


def test_solar_flare_dataset_builds_standardised_splits(tmp_path: Path) -> None:
    path = tmp_path / "flare.csv"
    path.write_text(_flare_csv(50))
    data, make_model = build_regression(RegressionConfig(path=str(path), hidden=[8]))
    assert [t.name for t in data.tasks] == ["c-class-flares", "m-class-flares", "x-class-flares"]
    assert sum(len(data.inputs[s]) for s in ("train", "dev", "test")) == 50
    z = data.targets["train"]["c-class-flares"]
    assert abs(float(z.mean())) < 1e-5
    out = make_model()(data.inputs["test"])
    assert out["m-class-flares"].shape == (len(data.inputs["test"]), 1)


def test_sarcos_csv_and_mat(tmp_path: Path) -> None:
    m = np.arange(28 * 5, dtype=float).reshape(5, 28)
    np.savetxt(tmp_path / "sarcos_inv.csv", m, delimiter=",")
    x, y, names = load_sarcos(tmp_path / "sarcos_inv.csv")
    assert x.shape == (5, 21) and y.shape == (5, 7) and names[-1] == "tau7"
    scipy_io = pytest.importorskip("scipy.io")
    scipy_io.savemat(tmp_path / "sarcos_inv_test.mat", {"sarcos_inv_test": m})
    np.testing.assert_array_equal(load_sarcos(tmp_path / "sarcos_inv_test.mat")[1], y)
    np.savetxt(tmp_path / "bad.csv", m[:, :10], delimiter=",")
    with pytest.raises(ValueError, match="28 columns"):
        load_sarcos(tmp_path / "bad.csv")
    data, _ = build_regression(
        RegressionConfig(
            source="sarcos",
            path=str(tmp_path / "sarcos_inv.csv"),
            test_path=str(tmp_path / "sarcos_inv_test.mat"),
            hidden=[],
        )
    )
    assert len(data.inputs["test"]) == 5 and len(data.tasks) == 7


def test_rf1_arff_with_missing_values(tmp_path: Path) -> None:
    lines = ["% River Flow", "@relation rf1"]
    lines += [f"@attribute in{i} numeric" for i in range(4)]
    lines += ["@attribute 'CHSI2_48H__0' numeric", "@attribute NASI2_48H__0 numeric", "@data"]
    rng = np.random.default_rng(1)
    for r in range(12):
        vals = [f"{v:.3f}" for v in rng.normal(size=6)]
        if r == 3:
            vals[1] = "?"
        lines.append(",".join(vals))
    path = tmp_path / "rf1.arff"
    path.write_text("\n".join(lines) + "\n")
    assert arff_attributes(path)[-2:] == ["CHSI2_48H__0", "NASI2_48H__0"]
    x, y, names = load_rf1(path, n_targets=2)
    assert names == ["CHSI2_48H__0", "NASI2_48H__0"]
    assert x.shape == (12, 4) and y.shape == (12, 2) and np.isnan(x[3, 1])
    data, _ = build_regression(RegressionConfig(source="rf1", path=str(path), n_targets=2))
    assert all(torch.isfinite(v).all() for v in data.inputs.values())
    with pytest.raises(ValueError, match=r"data\.path is required"):
        build_regression(RegressionConfig(source="rf1"))
