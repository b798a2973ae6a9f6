"""The built wheel, installed into a fresh virtual environment outside the checkout, runs the
quick start by name (its configs are package data) and every block of docs/your_problem.md
(images and text from files, TOML alone, TensorBoard) from a folder that is not the checkout.

The wheel is built from a copy of the sources in a temporary folder (nothing is written into
the checkout). The fresh environment gets the wheel only; its dependencies (torch, NumPy, SciPy,
and the extras these tests use) are borrowed from this interpreter's site-packages through a
``.pth`` line, appended after the environment's own site-packages, so nothing large is
reinstalled and the checkout's ``src/`` is never importable there (checked).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BORROWED = ["torch", "numpy", "scipy", "sklearn", "tensorboard", "tomli"]


def _build_tools_missing() -> str | None:
    for mod in ("setuptools", "wheel"):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} not installed (pip install -e '.[dev]' brings it)"
    if os.name == "nt":
        return "POSIX venv layout only"
    return None


pytestmark = pytest.mark.skipif(
    _build_tools_missing() is not None, reason=str(_build_tools_missing())
)


def _run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A fresh venv with the wheel installed; returns the environment to run its commands in."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src-copy"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(ROOT / "src", src / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    dist = base / "dist"
    out = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(src),
        ],
        cwd=base,
    )
    assert out.returncode == 0, out.stderr
    (wheel,) = dist.glob("alphavil-*.whl")

    env_dir = base / "venv"
    out = _run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)])
    assert out.returncode == 0, out.stderr
    python = env_dir / "bin" / "python"
    out = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ]
    )
    assert out.returncode == 0, out.stderr
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    borrowed = sorted(
        {
            str(Path(spec.origin).resolve().parents[1])
            for name in BORROWED
            if (spec := importlib.util.find_spec(name)) is not None and spec.origin
        }
        | {sysconfig.get_paths()["purelib"]}
    )
    assert not any(Path(d) in (ROOT, ROOT / "src") for d in borrowed), borrowed
    Path(purelib.stdout.strip(), "_borrowed_deps.pth").write_text("\n".join(borrowed) + "\n")

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(
        PATH=f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(env_dir),
        PYTHONNOUSERSITE="1",
        OMP_NUM_THREADS="1",
    )
    work = base / "work"  # the user's folder: not the checkout, no configs/ in it
    work.mkdir()
    env["_WORK"] = str(work)
    return env


def _alphavil(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(env["VIRTUAL_ENV"], "bin", "alphavil")
    return _run([str(exe), *args], cwd=env["_WORK"], env=env)


def test_the_wheel_imports_from_the_venv_and_lists_its_configs(venv: dict[str, str]) -> None:
    python = Path(venv["VIRTUAL_ENV"], "bin", "python")
    out = _run(
        [str(python), "-c", "import alphavil; print(alphavil.__file__)"],
        cwd=venv["_WORK"],
        env=venv,
    )
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).is_relative_to(Path(venv["VIRTUAL_ENV"])), out.stdout
    out = _alphavil(venv, "configs")
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(None, 1) for line in out.stdout.splitlines())
    assert set(lines) == {p.stem for p in (ROOT / "src/alphavil/configs").glob("*.toml")}
    assert lines["quickstart"].startswith("README quick start")
    out = _alphavil(venv, "configs", "quickstart")
    assert out.returncode == 0 and out.stdout == (ROOT / "configs/quickstart.toml").read_text()


def test_bad_config_names_give_one_line_and_exit_2(venv: dict[str, str]) -> None:
    before = sorted(Path(venv["_WORK"]).rglob("*"))
    for bad in ("nope", "configs/quickstart.toml"):
        out = _alphavil(venv, "run", bad)
        assert out.returncode == 2, out.stderr
        assert out.stderr.count("\n") == 1 and "quickstart" in out.stderr, out.stderr
    assert sorted(Path(venv["_WORK"]).rglob("*")) == before  # nothing written


def test_a_file_path_wins_over_the_built_in_name(venv: dict[str, str]) -> None:
    work = Path(venv["_WORK"])
    (work / "digits").write_text('out_dir = "mine"\n[data]\nname = "nope-dataset"\n')
    try:
        out = _alphavil(venv, "run", "digits")
        assert out.returncode == 2 and "nope-dataset" in out.stderr, out.stderr
    finally:
        (work / "digits").unlink()


def test_the_wheel_runs_the_digits_config_by_name(venv: dict[str, str]) -> None:
    pytest.importorskip("sklearn")
    tb = importlib.util.find_spec("tensorboard") is not None  # the extra, where installed
    args = ["train.epochs=1", "out_dir='runs/d'", f"train.tensorboard={str(tb).lower()}"]
    out = _alphavil(venv, "run", "digits", *args, "--quiet")
    assert out.returncode == 0, out.stderr
    run = next(Path(venv["_WORK"], "runs/d").iterdir())
    assert (run / "summary.json").is_file()
    assert any((run / "tb").glob("events.out.tfevents.*")) == tb


@pytest.mark.needs_mnist
def test_the_wheel_runs_the_quickstart_outside_the_checkout(venv: dict[str, str]) -> None:
    from tests.data.test_mnist import REAL_CACHE

    if REAL_CACHE is None:
        pytest.skip("real MNIST not cached (run `alphavil data`)")
    env = {**venv, "ALPHAVIL_CACHE": str(REAL_CACHE)}
    out = _alphavil(
        env,
        "sweep",
        "quickstart",
        "--workers",
        "0",
        "--methods",
        "alphavil",
        "train.epochs=1",
        "data.train_limit=512",
        "data.dev_limit=256",
        "data.test_limit=256",
    )
    assert out.returncode == 0, out.stderr
    (summary,) = Path(venv["_WORK"], "runs/quickstart").glob("*/summary.json")
    assert json.loads(summary.read_text())["method"] == "alphavil"


def test_the_wheel_runs_the_guide_outside_the_checkout(venv: dict[str, str]) -> None:
    """docs/your_problem.md, every block, with the wheel's `alphavil` and Python in a folder
    outside the checkout (the checkout test: tests/test_your_problem_docs.py)."""
    from tests.test_your_problem_docs import BLOCK, DOC

    for module in ("PIL", "sklearn", "transformers", "tensorboard"):
        pytest.importorskip(module)
    work = Path(venv["_WORK"], "guide")
    work.mkdir()
    env = {**venv, "HF_HUB_OFFLINE": "1"}
    python = str(Path(venv["VIRTUAL_ENV"], "bin", "python"))
    ran = 0
    for lang, info, body in BLOCK.findall(DOC.read_text()):
        info = info.strip()
        if info.startswith("file="):
            (work / info.removeprefix("file=")).write_text(body)
        elif lang == "python" and info == "run":
            out = _run([python, "-c", body], cwd=work, env=env)
            assert out.returncode == 0, out.stderr[-2000:]
            ran += 1
        elif lang == "bash" and info == "run":
            for line in body.strip().splitlines():
                words = line.split()
                assert words[0] == "alphavil", line
                exe = Path(venv["VIRTUAL_ENV"], "bin", "alphavil")
                out = _run([str(exe), *words[1:]], cwd=work, env=env)
                assert out.returncode == 0, f"{line}\n{out.stderr[-2000:]}"
                ran += 1
    assert ran == 7
    assert (work / "report-photos" / "table1.md").is_file()
    assert (work / "runs-reviews" / "alphavil-sentiment-s0" / "summary.json").is_file()
    assert any((work / "tb-reviews").rglob("events.out.tfevents.*"))
