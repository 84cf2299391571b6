"""TensorBoard's HPARAMS view over a mix of concepts and a sweep, read from the real server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from test_cli import cli


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_hparams_compares_runs_of_several_concepts_and_a_sweep(run, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    for concept in ("mlp", "dcgan", "dqn"):
        run([f"model={concept}", "trainer=debug"], logs)
    sweep = cli("-m", "trainer=debug", "optimizer=sgd,adamw", cwd=tmp_path)
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    runs = {p.parent for p in logs.rglob("events.out.tfevents.*")}
    assert len(runs) == 5

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logs), "--host", "127.0.0.1",
         "--port", str(port), "--load_fast=false", "--reload_interval=0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/data/plugin/hparams"
    try:
        for _ in range(120):  # the server starts, then loads the event files
            try:
                experiment = _post(f"{base}/experiment", {"experimentName": ""})
                if len(experiment.get("hparamInfos", [])) > 0:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        groups = _post(
            f"{base}/session_groups",
            {"experimentName": "", "startIndex": 0, "sliceSize": 100,
             "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE",
                                 "STATUS_RUNNING"]},
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)

    hparams = {h["name"] for h in experiment["hparamInfos"]}
    # the union of every run's curated hyperparameters: the sweep's key and each concept's own,
    # not every flattened key of the config (those stay in config.yaml and the Text tab)
    assert {
        "model",
        "data",
        "optimizer",
        "seed",
        "model.gamma",
        "model.net.hidden_sizes",
    } <= hparams
    assert len(hparams) < 40 and not any("_target_" in h for h in hparams), sorted(hparams)
    metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
    # each concept's monitored metric under its own name: no column mixes val/loss and val/return
    assert {"hp/val/loss", "hp/val/fid_cls", "hp/val/return"} <= metrics, sorted(metrics)
    assert "hp/monitor" not in metrics
    sessions = [s for g in groups["sessionGroups"] for s in g["sessions"]]
    assert len(sessions) == 5
    for session in sessions:  # every run has its monitored metric's column, and only that one
        monitor = OmegaConf.load(logs / session["name"] / "config.yaml").monitor.metric
        values = {m["name"]["tag"]: m["value"] for m in session["metricValues"]}
        assert {t for t in values if t.startswith("hp/")} == {f"hp/{monitor}"}, session["name"]
    optimizers = {g["hparams"].get("optimizer") for g in groups["sessionGroups"]}
    assert {"sgd", "adamw", "adam"} <= optimizers  # the sweep's two, DQN's own
