"""Progress output: a redrawn line on a terminal, one plain line per epoch otherwise."""

from __future__ import annotations

import io

from alphavil.progress import Progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    p = Progress("run", 2, stream=out)
    p.start_epoch(1)
    p.phase("batch 3")
    p.end_epoch("dev acc 0.5")
    assert out.getvalue() == "run epoch 1/2 dev acc 0.5\n"


def test_bar_redrawn_in_place_on_a_terminal() -> None:
    out = _Tty()
    p = Progress("run", 4, stream=out)
    p.start_epoch(3)
    p.phase("batch 7", force=True)
    p.end_epoch("done")
    text = out.getvalue()
    assert "\r\x1b[K" in text and "[##########----------] epoch 3/4 batch 7" in text
    assert text.endswith("run epoch 3/4 done\n")


def test_disabled_progress_is_silent() -> None:
    out = _Tty()
    p = Progress("run", 1, stream=out, enabled=False)
    p.start_epoch(1)
    p.end_epoch("x")
    p.message("y")
    assert out.getvalue() == ""
