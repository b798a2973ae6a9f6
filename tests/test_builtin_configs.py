"""Built-in configs: a path wins, else a bare name; ``alphavil configs`` lists them."""

from __future__ import annotations

from pathlib import Path

import pytest

from alphavil.builtin_configs import builtin_config_dir, builtin_configs, describe, find_config
from alphavil.cli import main
from alphavil.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]


def test_the_repository_configs_folder_is_the_package_data() -> None:
    assert (ROOT / "configs").resolve() == builtin_config_dir().resolve()
    assert set(builtin_configs()) == {p.stem for p in (ROOT / "configs").glob("*.toml")}
    assert all(describe(p) for p in builtin_configs().values())  # a first comment line each


def test_a_bare_name_resolves_to_the_built_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    quick = builtin_configs()["quickstart"]
    assert find_config("quickstart") == quick == find_config("quickstart.toml")
    assert load_config("quickstart").out_dir == "runs/quickstart"


def test_an_existing_path_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quickstart").write_text('out_dir = "mine"\n')
    assert find_config("quickstart") == Path("quickstart")
    assert load_config("quickstart").out_dir == "mine"


@pytest.mark.parametrize("bad", ["nope", "configs/quickstart.toml", "sub/nope.toml"])
def test_an_unknown_name_lists_the_built_ins(
    bad: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"built-in: .*quickstart"):
        find_config(bad)


def test_cli_configs_lists_and_prints(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["configs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(builtin_configs())
    assert main(["configs", "quickstart"]) == 0
    assert capsys.readouterr().out == builtin_configs()["quickstart"].read_text(encoding="utf-8")
    assert main(["configs", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("alphavil: error: config file 'nope'")
