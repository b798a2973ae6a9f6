"""The real-data chain, fast: real MNIST → MultiMNIST through the ``multimnist`` data spec
(normalisation, limits, left/right labels) → one αVIL epoch with its α fit. CI fetches MNIST
(``alphavil data``) and sets ALPHAVIL_REQUIRE_MNIST=1, so there this test runs or fails
(tests/conftest.py); locally it skips without the data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from alphavil.config import load_config
from alphavil.data.mnist import default_cache_dir, load_mnist
from alphavil.data.multimnist_spec import MEAN, STD
from alphavil.runner import execute, load_data
from alphavil.runs import read_jsonl

CACHE = default_cache_dir()  # $ALPHAVIL_CACHE, where `alphavil data` puts mnist.npz
N = {"train": 300, "dev": 200, "test": 200}


@pytest.mark.needs_mnist
@pytest.mark.skipif(not (CACHE / "mnist.npz").is_file(), reason="run `alphavil data` first")
def test_real_multimnist_through_the_spec_and_one_alphavil_epoch(tmp_path: Path) -> None:
    cfg = load_config(
        "configs/multimnist_paper.toml",
        [
            f"data.cache_dir='{CACHE}'",
            "data.download=false",
            *(f"data.{s}_limit={n}" for s, n in N.items()),
            f"out_dir='{tmp_path}'",
            "train.method=alphavil",
            "train.target=left",
            "train.epochs=1",
            "train.threads=1",
            "train.save_checkpoints=false",
            "train.save_predictions=false",
        ],
    )
    data, _ = load_data(cfg)
    for split, n in N.items():
        x = data.inputs[split]  # type: ignore[attr-defined]
        assert x.shape == (n, 1, 28, 28) and x.dtype == torch.float32
        pixels = x * STD + MEAN  # undo the normalisation: back to [0, 1], background 0
        assert float(pixels.min()) == pytest.approx(0.0, abs=1e-6)
        assert float(pixels.max()) == pytest.approx(1.0, abs=1e-6)
    # test image i has MNIST test image i on the left and a random partner on the right
    mnist = load_mnist(cache_dir=CACHE, download=False)
    left, right = (data.targets["test"][t].numpy() for t in ("left", "right"))  # type: ignore[attr-defined]
    np.testing.assert_array_equal(left, mnist.test_labels[: N["test"]])
    assert (right != mnist.test_labels[: N["test"]]).mean() > 0.5  # not the same digit: swapped
    assert set(np.unique(right)) == set(range(10))

    summary = execute(cfg, tmp_path / "run", show_progress=False)
    assert summary["status"] == "completed" and summary["epochs_completed"] == 1
    (rec,) = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    fit = rec["alpha_fit"]
    assert set(rec["alpha"]) == {"left", "right"}
    assert fit["forward_passes"] >= 1 and fit["objective_end"] <= fit["objective_start"] + 1e-9
    assert min(rec["weights"].values()) >= 1e-6
    assert 0.1 < rec["dev"]["left"]["accuracy"] <= 1.0  # 10 classes: above chance after 1 epoch
