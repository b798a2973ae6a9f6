"""docs/your_problem.md runs as written, from files and TOML alone: its data-making blocks, its
configs, its sweeps, reports and the TensorBoard export; then the runs it promises exist."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.test_own_data_docs import _run

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "your_problem.md"
BLOCK = re.compile(r"```(\w+)([^\n]*)\n(.*?)```", re.S)


def test_every_block_of_the_guide_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("PIL", "sklearn", "transformers", "tensorboard"):
        pytest.importorskip(module)
    monkeypatch.chdir(tmp_path)  # the python blocks write relative paths, as a user's would
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ran = 0
    for lang, info, body in BLOCK.findall(DOC.read_text()):
        info = info.strip()
        if info.startswith("file="):
            (tmp_path / info.removeprefix("file=")).write_text(body)
        elif lang == "python" and info == "run":
            exec(compile(body, str(DOC), "exec"), {})
            ran += 1
        elif lang == "bash" and info == "run":
            for line in body.strip().splitlines():
                res = _run(line, tmp_path)
                assert res.returncode == 0, f"{line}\n{res.stderr[-2000:]}"
                ran += 1
    assert ran == 7  # two data blocks, five commands
    for method in ("alphavil", "forkmerge", "single"):
        run = tmp_path / "runs-photos" / f"{method}-digit-s0"
        assert (run / "summary.json").is_file(), sorted(os.listdir(tmp_path / "runs-photos"))
        assert any((run / "tb").iterdir())  # train.tensorboard wrote event files
    assert (tmp_path / "report-photos" / "table1.md").is_file()
    assert (tmp_path / "runs-reviews" / "alphavil-sentiment-s0" / "summary.json").is_file()
    assert any((tmp_path / "tb-reviews").rglob("events.out.tfevents.*"))
