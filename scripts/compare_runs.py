"""Compare runs: one row per run from its summary.json, config.yaml and TensorBoard events.

    python scripts/compare_runs.py                              (every run under logs/)
    python scripts/compare_runs.py logs/multiruns/<sweep>       (one sweep)
    python scripts/compare_runs.py --model mlp --glob '*sgd*' --format markdown -o runs.md
    python scripts/compare_runs.py --format csv -o runs.csv
    python scripts/compare_runs.py logs/multiruns/<sweep> --plot curves.png --curve val/loss
    python scripts/compare_runs.py --all                        (every column)

Columns: the run folder, model, data, seed, status, duration, the monitored metric's best value
(from summary.json) and the final value of every scalar in the TensorBoard events whose name
starts with --prefix (test/ by default), then the hyperparameters (from each run's config.yaml).
Only what tells the runs apart is shown: the columns whose values differ between the listed runs
(the ones they share are named on stderr) and the hyperparameters set differently in runs that
have them, so a sweep shows what it swept. --all: every column, and also the hyperparameters that
only some runs have (other concepts' settings).
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import io
import json
import sys
from pathlib import Path
from typing import Any

IGNORED_KEYS = ("paths.", "name", "ckpt_path", "callbacks.", "logger.", "trainer.default_root_dir")


def find_runs(roots: list[Path]) -> list[Path]:
    runs = []
    for root in roots:
        if (root / "summary.json").is_file():
            runs.append(root)
        else:
            runs += sorted(p.parent for p in root.rglob("summary.json"))
    return sorted(set(runs))


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(cfg, dict):
        out: dict[str, Any] = {}
        for key, value in cfg.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    if isinstance(cfg, list) and all(not isinstance(v, dict | list) for v in cfg):
        return {prefix[:-1]: json.dumps(cfg)}
    return {prefix[:-1]: cfg}


def scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in the run's TensorBoard events: tag -> [(step, value)]."""
    if not list(run.glob("events.out.tfevents.*")):
        return {}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    return {t: [(e.step, e.value) for e in events.Scalars(t)] for t in events.Tags()["scalars"]}


def load_run(run: Path, prefix: str) -> dict[str, Any]:
    summary = json.loads((run / "summary.json").read_text())
    row: dict[str, Any] = {
        "run": str(run),
        "model": summary.get("model"),
        "data": summary.get("data"),
        "seed": summary.get("seed"),
        "status": summary.get("status", "completed"),
        "duration_s": summary.get("duration_s"),
    }
    monitor = summary.get("monitor") or {}
    if monitor.get("metric"):
        row[f"best {monitor['metric']}"] = monitor.get("best")
    final = {k: v for k, v in summary.get("metrics", {}).items() if k.startswith(prefix)}
    for tag, series in scalars(run).items():  # the events also hold runs that were cut short
        if tag.startswith(prefix) and tag not in final:
            final[tag] = series[-1][1]
    row.update(sorted(final.items()))
    config = run / "config.yaml"
    if config.is_file():
        from omegaconf import OmegaConf

        from mlzoo.run.files import read_config_file  # bounded: aliases cannot make it huge

        row["_config"] = flatten(OmegaConf.to_container(read_config_file(config, "run")) or {})
    return row


def differing(rows: list[dict[str, Any]], everything: bool = False) -> list[str]:
    """The config keys set differently in the runs that have them (``everything``: also the
    keys some runs have and others not, such as one concept's settings beside another's)."""
    keys = sorted({k for r in rows for k in r.get("_config", {})})
    out = []
    for key in keys:
        if key.startswith(IGNORED_KEYS):
            continue
        configs = [r.get("_config", {}) for r in rows]
        have = configs if everything else [c for c in configs if key in c]
        values = {json.dumps(c.get(key), default=str) for c in have}
        if len(values) > 1:
            out.append(key)
    return out


def table(
    rows: list[dict[str, Any]], everything: bool = False
) -> tuple[list[str], list[list[str]], dict[str, str]]:
    """(columns, cells, the columns left out as the same in every run -> their value). One run,
    or ``everything``: every column."""
    params = differing(rows, everything)
    summary = [k for r in rows for k in r if k != "_config"]
    columns = list(dict.fromkeys([*summary, *params]))  # (seed: in both)
    for r in rows:
        config = r.pop("_config", {})
        for key in params:
            r[key] = config.get(key)
    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    same: dict[str, str] = {}
    if len(rows) > 1 and not everything:
        for i, column in enumerate(columns):
            values = {row[i] for row in cells}
            if column != "run" and len(values) == 1:
                same[column] = values.pop()
        keep = [i for i, c in enumerate(columns) if c not in same]
        columns, cells = [columns[i] for i in keep], [[row[i] for i in keep] for row in cells]
    return columns, cells, same


def shared_line(same: dict[str, str], runs: int, width: int = 160) -> str:
    """``the same in all 4 runs: model=mlp, data=digits, ... (--all shows every column)``."""
    shown = ", ".join(f"{k}={v}" if v else f"{k} (empty)" for k, v in same.items())
    if len(shown) > width:
        shown = shown[: width - 3].rsplit(", ", 1)[0] + ", ..."
    return f"the same in all {runs} runs: {shown} (--all shows every column)"


def fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render(columns: list[str], cells: list[list[str]], kind: str) -> str:
    if kind == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows(cells)
        return out.getvalue()
    if kind == "markdown":
        lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
        return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in cells]) + "\n"
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    body = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join([line, "-" * len(line), *body]) + "\n"


def plot(runs: list[Path], tag: str, path: Path) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    drawn = 0
    for run in runs:
        series = scalars(run).get(tag)
        if series:
            steps, values = zip(*series, strict=True)
            ax.plot(steps, values, label=run.name, marker="." if len(series) < 50 else None)
            drawn += 1
    ax.set_xlabel("step")
    ax.set_ylabel(tag)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return drawn


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "paths",
        nargs="*",
        type=Path,
        default=[Path("logs")],
        help="run folders or folders to search (default: logs)",
    )
    p.add_argument("--model", action="append", help="only these models (repeatable)")
    p.add_argument("--glob", help="only runs whose folder path matches this glob")
    p.add_argument("--prefix", default="test/", help="final metrics shown (default: test/)")
    p.add_argument("--format", choices=["table", "csv", "markdown"], default="table")
    p.add_argument("-o", "--output", type=Path, help="write there instead of printing")
    p.add_argument("--plot", type=Path, help="draw learning curves to this PNG")
    p.add_argument("--curve", default=None, help="the scalar to plot (default: the monitored)")
    p.add_argument(
        "--all",
        action="store_true",
        help="every column, also the ones the same in every run (default: what differs)",
    )
    args = p.parse_args(argv)
    from mlzoo.base.errors import ZooError

    try:
        return _compare(args)
    except ZooError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def _compare(args: argparse.Namespace) -> int:
    from mlzoo.run.files import check_output

    missing = [str(path) for path in args.paths if not path.exists()]
    if missing:
        print(f"error: no such folder: {', '.join(missing)}", file=sys.stderr)
        return 1
    for option, path in (("-o", args.output), ("--plot", args.plot)):
        if path is not None:
            check_output(path, option)  # new files only: nothing earlier is overwritten
    runs = find_runs(args.paths)
    if args.glob:
        runs = [r for r in runs if fnmatch.fnmatch(str(r), f"*{args.glob}*")]
    rows = [load_run(r, args.prefix) for r in runs]
    if args.model:
        keep = [i for i, r in enumerate(rows) if r["model"] in args.model]
        rows, runs = [rows[i] for i in keep], [runs[i] for i in keep]
    if not rows:
        print("error: no runs (summary.json) match", file=sys.stderr)
        return 1
    if args.plot:
        monitor = next((k[5:] for k in rows[0] if k.startswith("best ")), "val/loss")
        tag = args.curve or monitor
        if not plot(runs, tag, args.plot):
            print(f"error: no run has a {tag!r} curve in its TensorBoard events", file=sys.stderr)
            return 1
        print(f"curves of {tag} for {len(runs)} runs -> {args.plot}", file=sys.stderr)
    columns, cells, same = table(rows, args.all)
    text = render(columns, cells, args.format)
    if same:
        print(shared_line(same, len(rows)), file=sys.stderr)
    if args.output:
        with open(args.output, "x") as f:  # exclusive: never over a file made since the check
            f.write(text)
        print(f"{len(rows)} runs -> {args.output}", file=sys.stderr)
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
