"""The command line answers before it imports torch or Lightning: ``--help``, every script's
``--help``, and the config mistakes a user makes most (an unknown option or key, a value of the
wrong type, a batch size or split no data set takes). Importing Lightning takes seconds (it
imports the whole of torchmetrics, which imports torchvision's models and, when installed,
transformers); an answer that waits for it is a CLI that feels broken.

Each command runs in a fresh interpreter, as a user runs it; the test reads ``sys.modules`` at
the end instead of timing anything (timings: ``benchmarks/run.py startup``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

HEAVY = ("torch", "lightning", "torchmetrics", "transformers")

# Runs a command's main() the way its file runs it; prints the exit code, the heavy modules
# that were imported, and stderr.
PROBE = r"""
import contextlib, io, json, runpy, sys
path, args, watched = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
sys.argv = [path, *args]
err = io.StringIO()
code = 0
with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as e:
        code = e.code or 0
heavy = [m for m in watched if m in sys.modules]
print(json.dumps({"code": code, "heavy": heavy, "stderr": err.getvalue()}))
"""


def probe(script: Path, args: list[str], cwd: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(script), json.dumps(args), json.dumps(HEAVY)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


SCRIPTS = [*sorted((ROOT / "scripts").glob("*.py")), ROOT / "benchmarks" / "run.py"]


@pytest.mark.parametrize("script", [ROOT / "train.py", *SCRIPTS], ids=lambda p: p.name)
def test_help_answers_without_importing_torch(script: Path, tmp_path: Path) -> None:
    result = probe(script, ["--help"], tmp_path)
    assert result["code"] == 0, result
    assert result["heavy"] == [], f"{script.name} --help imported {result['heavy']}"


# (overrides, a piece of the one error line)
CONFIG_ERRORS = [
    (["model=mlpp"], "did you mean model=mlp?"),
    (["data=digitz"], "did you mean data=digits?"),
    (["experiment=transfer_imagnet"], "did you mean experiment=transfer_imagenet?"),
    (["data.batchsize=8"], "did you mean data.batch_size?"),
    (["trainer.max_epoch=3"], "did you mean trainer.max_epochs?"),
    (["data.batch_size=0"], "data.batch_size must be >= 1, got 0"),
    (["data.batch_size=-5"], "data.batch_size must be >= 1"),
    (["data.batch_size=abc"], "data.batch_size: expected int, got 'abc'"),
    (["data.batch_size=1.5"], "data.batch_size: expected int, got 1.5"),
    (["data.val_fraction=1.5"], "data.val_fraction must be in (0, 1)"),
    (["data.labels_per_class=0"], "data.labels_per_class must be >= 1"),
    (["trainer.max_epochs=abc"], "trainer.max_epochs: expected Optional[int]"),
    (["seed=abc"], "seed: expected int or null"),
    (["seed=-1"], "seed: must be in [0, 2**32)"),
    (["torch_threads=two"], "torch_threads"),
    (["model.optimizer.lr=fast"], "model.optimizer.lr: expected Union[float, Tensor]"),
    (["model.optimizer.lr=-1"], "a learning rate must be a finite number > 0"),
    (["model.net.hidden_sizes=8"], "model.net.hidden_sizes: expected Sequence"),
    (["model.net.dropout=high"], "model.net.dropout: expected float"),
    (["model=cnn", "data.batch_size=x"], "data.batch_size: expected int"),
    (["model=dqn", "model.gamma=high"], "model.gamma: expected float"),
    (["model=ppo", "data.num_envs=many"], "data.num_envs: expected int"),
    (["model=vae", "model.beta=big"], "model.beta: expected float"),
]


@pytest.mark.parametrize("overrides,message", CONFIG_ERRORS, ids=lambda v: str(v))
def test_config_errors_answer_in_one_line_without_importing_torch(
    overrides: list[str], message: str, tmp_path: Path
) -> None:
    result = probe(ROOT / "train.py", ["logger=none", *overrides], tmp_path)
    lines = result["stderr"].strip().splitlines()
    assert result["code"] == 1 and len(lines) == 1 and lines[0].startswith("error: "), result
    assert message in lines[0], lines[0]
    assert result["heavy"] == [], f"{overrides}: imported {result['heavy']} before answering"
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").rglob("*.yaml"))


def test_the_early_type_check_never_refuses_what_the_full_check_accepts() -> None:
    """The hints read from source (before any import) and the imported classes' hints agree: for
    every _target_ in configs/, every value the full check accepts, the early one accepts too."""
    import re

    from hydra.utils import get_object

    from mlzoo.run.typecheck import _imported_hints, accepts, source_hints

    targets = set()
    for path in (ROOT / "configs").rglob("*.yaml"):
        targets.update(re.findall(r"_target_:\s*([\w.]+)", path.read_text()))
    assert len(targets) > 20
    samples = [0, 1, 2.5, True, "x", None, [1, 2], (1,)]
    checked = 0
    for target in sorted(targets):
        try:
            get_object(target)
        except Exception:  # an optional package this machine lacks
            continue
        full, early = _imported_hints(target), source_hints(target)
        for key, hint in early.items():
            if key not in full:
                continue
            for value in samples:
                if accepts(full[key], value) is not False:
                    assert accepts(hint, value) is not False, (target, key, hint, value)
                    checked += 1
    assert checked > 200
