"""The README documents the config tree as it is: its option table lists every option of every
config group a user picks, and every `python train.py` command it shows composes.

Composition checks the config tree only (groups, options, keys, interpolations): nothing is
trained, downloaded or read, so commands naming files that do not exist here still count.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from mlzoo.run.train import CONFIG_DIR

from conftest import ROOT, compose_config

README = (ROOT / "README.md").read_text()
CONFIGS = Path(CONFIG_DIR)

# Groups with files under configs/ that a user does not pick, so the option table leaves them
# out: train.yaml picks tuned/<model>_<data> by itself when both are chosen (checked below
# instead: each file names a real model and data set); paths/ and hydra/ hold one `default` each,
# the run's folders and Hydra's own settings, whose keys are overridden, never the option.
NOT_PICKED = {"tuned", "paths", "hydra"}


def groups() -> dict[str, set[str]]:
    """Each folder of configs/ holding yaml files ('hydra/launcher' for a nested one): its options."""
    found: dict[str, set[str]] = {}
    for path in CONFIGS.rglob("*.yaml"):
        if path.parent != CONFIGS:
            found.setdefault(path.parent.relative_to(CONFIGS).as_posix(), set()).add(path.stem)
    return found


def option_table() -> dict[str, set[str]]:
    """The README's `| group | options |` table: each group (the first `code` span of the first
    cell) and the options named in the second cell (its `code` spans that are bare names)."""
    lines = README.splitlines()
    start = next(
        i for i, line in enumerate(lines) if re.match(r"\|\s*group\s*\|\s*options\s*\|", line)
    )
    table: dict[str, set[str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        group = re.search(r"`([^`]+)`", cells[0]).group(1)
        table[group] = {s for s in re.findall(r"`([^`]+)`", cells[1]) if re.fullmatch(r"\w+", s)}
    return table


def test_the_option_table_lists_every_option_of_every_config_group() -> None:
    table = option_table()
    wanted = {g: o for g, o in groups().items() if g not in NOT_PICKED}
    missing = {g: sorted(o - table.get(g, set())) for g, o in wanted.items()}
    missing = {g: o for g, o in missing.items() if o}
    assert not missing, f"README's option table lacks (group: options): {missing}"
    # and names nothing that is not there (Hydra's list includes the plugins' own options, e.g.
    # hydra/launcher's submitit_local)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        unknown = {g: sorted(o - set(loader.get_group_options(g))) for g, o in table.items()}
    unknown = {g: o for g, o in unknown.items() if o}
    assert not unknown, f"README's option table names options that do not exist: {unknown}"


def test_every_rl_benchmark_preset_cites_its_number_and_has_a_readme_row() -> None:
    """experiment=dqn_* / ppo_* with rl-zoo's settings (Pendulum's has no published anchor):
    the header says "Published (...): <number>", and the README's benchmark table has the
    preset's row with that number in its rl-zoo column."""
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\s*\| `experiment=(\w+)` \|[^|]*\|[^|]*\| ([^|]*) \|", README, re.M)
    }
    presets = [p for p in CONFIGS.glob("experiment/*.yaml") if re.match(r"(dqn|ppo)_", p.stem)]
    assert len(presets) >= 8
    for path in presets:
        if path.stem == "ppo_pendulum":
            continue
        cited = re.search(r"^# Published \([^)]*\): (-?[\d.]+)", path.read_text(), re.M)
        assert cited, f"{path.name}: no '# Published (source): <number>' line"
        assert path.stem in rows, f"README's RL benchmark table has no row for {path.stem}"
        number = rf"(?<![\d.]){re.escape(cited.group(1))}(?![\d])"  # 20.6, not 120.6 or 20.65
        assert re.search(number, rows[path.stem]), (path.stem, cited.group(1), rows[path.stem])


def test_every_tuned_config_names_a_model_and_a_data_set() -> None:
    """tuned/ is outside the table: a file there applies only if it is named <model>_<data>."""
    data = groups()["data"] | groups()["env"]
    pairs = {f"{m}_{d}" for m in groups()["model"] for d in data}
    assert not groups()["tuned"] - pairs, sorted(groups()["tuned"] - pairs)


def readme_commands() -> list[str]:
    """Every command line of the README that starts with python/bash (or make train): from code
    blocks, line continuations joined, and from `inline code`."""
    found = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", README, flags=re.M | re.S):
        found += [line.strip() for line in block.replace("\\\n", " ").splitlines()]
    found += re.findall(r"`((?:python|bash|make) [^`]+)`", README)
    start = re.compile(
        r"(python|\.venv/bin/python|bash) (train\.py|scripts/|benchmarks/)|make train\b"
    )
    return list(dict.fromkeys(line for line in found if start.match(line)))


COMMANDS = readme_commands()
TRAIN = [c for c in COMMANDS if " train.py" in c.split("#")[0] or c.startswith("make train")]
SCRIPTS = [c for c in COMMANDS if c not in TRAIN]
# Flags of train.py (Hydra's): dropped, with the argument of those that take one.
FLAGS = {"-m": 0, "--multirun": 0, "--help": 0, "--hydra-help": 0, "--info": 0, "--cfg": 1}
FLAGS |= {"-c": 1, "--package": 1, "-p": 1, "--resolve": 0}


def overrides_of(command: str) -> list[str]:
    """The overrides a README command passes to train.py, as the shell would split them.

    Placeholders such as `<run>` become plain words (in a shell they would be redirections)."""
    words = shlex.split(re.sub(r"<([\w-]+)>", r"\1", command), comments=True)
    for stop in ("&&", "||", ";", "|"):
        words = words[: words.index(stop)] if stop in words else words
    if words[:2] == ["make", "train"]:
        args = [word[len("ARGS=") :] for word in words if word.startswith("ARGS=")]
        return shlex.split(args[0]) if args else []
    words = words[words.index("train.py") + 1 :]
    overrides, skip = [], 0
    for word in words:
        if skip:
            skip -= 1
        elif word.startswith("-"):
            assert word in FLAGS, f"{command!r}: the test does not know the flag {word}"
            skip = FLAGS[word]
        else:
            overrides.append(word)
    return overrides


def combinations(overrides: list[str]) -> list[list[str]]:
    """A sweep's first combination, and each other option of each comma sweep over a config
    group with the rest at their first (a sweep of plain values, seed=0,1,2, composes alike)."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    sweeps = {
        i: [f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()]
        for i, o in enumerate(parsed)
        if o.is_sweep_override()
    }
    first = [sweeps[i][0] if i in sweeps else text for i, text in enumerate(overrides)]
    out = [first]
    for i, values in sweeps.items():
        if parsed[i].key_or_group in GROUPS:
            out += [[*first[:i], value, *first[i + 1 :]] for value in values[1:]]
    return out


GROUPS = groups()
# Each distinct list of overrides once, named by the first README command that gives it.
CASES = {}
for command in TRAIN:
    for overrides in combinations(overrides_of(command)):
        CASES.setdefault(tuple(overrides), command)


def test_the_readme_shows_train_commands() -> None:
    assert len(TRAIN) > 50 and any("make train" in c for c in TRAIN)
    assert overrides_of("python train.py -m a=1,2 b=x  # comment") == ["a=1,2", "b=x"]
    assert overrides_of('make train ARGS="data=diabetes seed=0"') == ["data=diabetes", "seed=0"]
    assert overrides_of("python train.py x=logs/<run>/last.ckpt") == ["x=logs/run/last.ckpt"]
    assert combinations(["optimizer=sgd,adam", "b=x", "seed=3,4", "data=digits,mnist"]) == [
        ["optimizer=sgd", "b=x", "seed=3", "data=digits"],
        ["optimizer=adam", "b=x", "seed=3", "data=digits"],
        ["optimizer=sgd", "b=x", "seed=3", "data=mnist"],
    ]


@pytest.mark.parametrize(
    "overrides", list(CASES), ids=lambda o: CASES[o].split("#")[0].strip()[:80]
)
def test_every_readme_train_command_composes(overrides: tuple[str, ...], tmp_path: Path) -> None:
    try:
        OmegaConf.resolve(compose_config(list(overrides), tmp_path))
    except Exception as error:
        raise AssertionError(f"README: {CASES[overrides]!r} does not compose: {error}") from error


@pytest.mark.parametrize("command", SCRIPTS, ids=lambda c: c.split("#")[0].strip()[:80])
def test_every_readme_script_exists(command: str) -> None:
    words = shlex.split(command, comments=True)
    script = next(w for w in words if w.startswith(("scripts/", "benchmarks/")))
    assert (ROOT / script).is_file(), f"README: {command!r}: {script} does not exist"
