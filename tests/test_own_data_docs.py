"""docs/own_data.md runs as written: its files are written to a folder, its commands run there."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.data.test_mnist import REAL_CACHE
from tests.helpers import mnist_required

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "own_data.md"
BLOCK = re.compile(r"```(\w+)([^\n]*)\n(.*?)```", re.S)


def _blocks() -> list[tuple[str, str, str]]:
    return [(lang, info.strip(), body) for lang, info, body in BLOCK.findall(DOC.read_text())]


def _run(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    words = shlex.split(line)
    while words and "=" in words[0] and not words[0].startswith("-"):
        key, _, value = words.pop(0).partition("=")
        env[key] = str(cwd) if value == "." else value
    assert words[0] == "alphavil", line
    if REAL_CACHE is not None:
        env["ALPHAVIL_CACHE"] = str(REAL_CACHE)
    cmd = [sys.executable, "-m", "alphavil.cli", *words[1:]]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_every_file_and_command_on_the_page_works(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "digits.toml").write_text(
        (ROOT / "configs" / "digits.toml").read_text()
    )
    ran = 0
    for lang, info, body in _blocks():
        if info.startswith("file="):
            (tmp_path / info.removeprefix("file=")).write_text(body)
        elif lang == "python" and info.startswith("run"):
            namespace: dict[str, object] = {}
            exec(compile(body, str(DOC), "exec"), namespace)
            assert namespace["accuracy"] > 0.8  # type: ignore[operator]
            assert namespace["weights"][0] == 1.0  # type: ignore[index]  # the target's
            ran += 1
        elif lang == "bash" and info.startswith("run"):
            if "needs_mnist" in info and REAL_CACHE is None:
                assert not mnist_required(), "real MNIST missing (ALPHAVIL_REQUIRE_MNIST is set)"
                continue
            for line in body.strip().splitlines():
                res = _run(line, tmp_path)
                assert res.returncode == 0, f"{line}\n{res.stderr[-2000:]}"
                ran += 1
    assert ran >= 4
    assert (tmp_path / "runs-docs-sweep" / "alphavil-main-s0" / "summary.json").is_file()


def test_an_unimportable_dataset_path_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('[data]\nname = "my_taks:SPEC"\n')
    res = _run("alphavil run bad.toml", tmp_path)
    assert res.returncode == 2
    assert res.stderr.startswith("alphavil: error: data.name: cannot import 'my_taks'")
    assert len(res.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("alphavil.data.toy", "unknown dataset .* or an import path"),
        ("alphavil.data.toy:NOPE", "has no attribute 'NOPE'"),
        ("alphavil.data.toy:TASKS", "is a tuple, not an alphavil.DatasetSpec"),
    ],
)
def test_bad_import_paths_name_the_problem(name: str, message: str) -> None:
    from alphavil.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=message):
        load_config(None, [f"data.name={name!r}"])
