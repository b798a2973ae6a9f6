"""The README's Python example runs as written (docs that run)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs_and_learns() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    out = io.StringIO()
    namespace: dict[str, object] = {}
    with contextlib.redirect_stdout(out):
        exec(compile(blocks[0], "README.md", "exec"), namespace)
    lines = out.getvalue().splitlines()
    assert len(lines) == 5
    weights = namespace["weights"]
    assert min(weights.tolist()) >= 1e-6  # type: ignore[attr-defined]
    assert weights[0] == 1.0  # type: ignore[index]  # the target's, under the relative rule
    # it learns: the target (the sign of x_0) from chance to near perfect on its dev set
    model, x_dev, y_dev = (namespace[k] for k in ("model", "x_dev", "y_dev"))
    model.eval()  # type: ignore[attr-defined]
    with torch.no_grad():
        pred = model(x_dev, ["main"])["main"].argmax(1)  # type: ignore[operator]
    accuracy = float((pred == y_dev["main"]).double().mean())  # type: ignore[index]
    assert accuracy > 0.9, accuracy


def test_readme_commands_name_existing_configs() -> None:
    text = README.read_text()
    for path in re.findall(r"configs/[\w_]+\.toml", text):
        assert (README.parent / path).exists(), path
