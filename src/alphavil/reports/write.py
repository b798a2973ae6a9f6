"""Report files: Table 1, the paired statistics, αVIL's use of each task and the figures of
the runs under a folder, each file written atomically."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from alphavil.reports.alpha_use import alpha_use, format_alpha_use
from alphavil.reports.collect import collect_runs
from alphavil.reports.figures import alpha_weight_figure, dev_curve_figure
from alphavil.reports.labels import label_order
from alphavil.reports.stats import paired
from alphavil.reports.tables import figure3_check, format_paired, format_table, table1
from alphavil.runs import atomic_write


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    data = buf.getvalue().encode()
    atomic_write(path, lambda f: f.write(data))


def write_text(path: Path, text: str) -> None:
    data = text.encode()
    atomic_write(path, lambda f: f.write(data))


def write_report(
    root: Path,
    out: Path | None = None,
    tuned: dict[str, list[str]] | None = None,
    labels: list[str] | None = None,
) -> list[Path]:
    """Write Table 1 (md, csv), paired statistics (md, csv), αVIL's use of each task
    (:mod:`alphavil.reports.alpha_use`) and figures of the runs under ``root`` (only ``labels`` when
    given); returns the paths."""
    out = out or Path(root) / "report"
    runs = collect_runs(root, labels)
    rows, pairs = table1(runs, tuned), paired(runs, tuned)
    paths = [out / "table1.md", out / "table1.csv", out / "paired.md", out / "paired.csv"]
    write_text(paths[0], format_table(runs, tuned) + "\n")
    write_csv(paths[1], rows)
    write_text(paths[2], format_paired(pairs) + "\n")
    write_csv(paths[3], pairs)
    targets = sorted({r["target"] for r in rows})
    alphavil_labels = label_order({r["label"] for r in runs if r["method"] == "alphavil"})
    checks = [c for t in targets for lab in alphavil_labels if (c := figure3_check(runs, t, lab))]
    write_text(out / "figure3_check.md", "\n".join(f"- {c}" for c in checks) + "\n")
    paths.append(out / "figure3_check.md")
    use = alpha_use(runs)
    if use:
        write_text(out / "alpha_use.md", format_alpha_use(use) + "\n")
        write_csv(out / "alpha_use.csv", use)
        paths += [out / "alpha_use.md", out / "alpha_use.csv"]
    for target in targets:
        for lab in alphavil_labels:
            suffix = "" if lab == "alphavil" else f"_{lab}"
            p = alpha_weight_figure(runs, target, out / f"figure3_{target}{suffix}.png", lab)
            if p:
                paths.append(p)
        paths.append(dev_curve_figure(runs, target, out / f"dev_curves_{target}.png"))
    return paths
