"""The README's Python example runs as written (docs that run)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

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


def test_readme_commands_name_existing_configs() -> None:
    text = README.read_text()
    for path in re.findall(r"configs/[\w_]+\.toml", text):
        assert (README.parent / path).exists(), path
