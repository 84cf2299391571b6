"""Many command lines through the real entry points, in one interpreter.

Each case runs as a user would run it (mlzoo.run.train.main with Hydra's own command-line parsing,
or a script's main()), one after another in one subprocess: the code path is the command line's,
the start-up cost is paid once. Every train.py case gets ``trainer=debug logger=none`` first.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

RUNNER = r"""
import contextlib, importlib.util, io, json, sys, traceback
from pathlib import Path
from mlzoo.run.train import main
root, cases = Path(sys.argv[2]), json.loads(sys.argv[1])

def script(name):
    spec = importlib.util.spec_from_file_location(name, root / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main

results = []
for kind, args in cases:
    err = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            if kind == "train":
                flags = [a for a in args if a.startswith("-")]  # -m comes before overrides
                rest = [a for a in args if not a.startswith("-")]
                sys.argv = ["train.py", *flags, "trainer=debug", "logger=none", *rest]
                main()
            else:
                code = script(kind)(args)
        except SystemExit as e:
            code = e.code
        except BaseException:
            code = "escaped"
            traceback.print_exc()
    results.append({"args": args, "code": code, "stderr": err.getvalue()})
print(json.dumps(results))
"""


def run_cases(
    cases: list[tuple[str, list[str], str]],
    cwd: Path,
    env: dict | None = None,
    strict: bool = True,
    timeout: int = 1800,
) -> list[str]:
    """Run (kind, args, reason) cases: kind is ``train`` or a script's name. Returns what went
    wrong, a line per failed case: exit code 0, a traceback, the reason missing from stderr, and
    when ``strict`` not exactly one ``error:`` line (holding the reason)."""
    payload = json.dumps([[kind, args] for kind, args, _ in cases])
    out = subprocess.run(
        [sys.executable, "-c", RUNNER, payload, str(ROOT)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout.strip().splitlines()[-1])
    failures = []
    for (kind, args, reason), result in zip(cases, results, strict=True):
        stderr = result["stderr"]
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        problems = [
            "exit code 0" if result["code"] in (0, None) else "",
            "a traceback" if "Traceback" in stderr or result["code"] == "escaped" else "",
            f"no {reason!r} in the message" if reason not in stderr else "",
        ]
        if strict and (len(errors) != 1 or reason not in errors[0]):
            problems.append(f"{len(errors)} error: lines")
        if any(problems):
            shown = ", ".join(p for p in problems if p)
            failures.append(f"{kind} {args}: {shown}\n    {stderr[-600:]}")
    return failures
