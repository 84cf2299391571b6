"""logger=mlflow and logger=wandb (offline), beside TensorBoard in one run: each read back with
the library's own means (MLflow's client; W&B's offline run file, parsed with its protobuf
records) holds the same metric names and the same hyperparameters TensorBoard has."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import pytest

from conftest import run_training

BLOCK = 32768  # W&B's run file: LevelDB's log format, 32 KiB blocks of 7-byte-headed chunks


def wandb_records(path: Path):
    """The protobuf Records of an offline W&B run file (wandb >= 0.19 ships no reader)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, chunk = path.read_bytes(), 7, b""  # 7: the ':W&B' file header
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _, n, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and n == 0:
            pos += left
            continue
        chunk += data[pos + 7 : pos + 7 + n]
        pos += 7 + n
        if kind in (1, 4):  # FULL or LAST: a whole record
            record = pb.Record()
            record.ParseFromString(chunk)
            yield record
            chunk = b""


def test_mlflow_and_wandb_get_what_tensorboard_gets(tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow")
    pytest.importorskip("wandb")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    loggers = "logger=[tensorboard,mlflow,wandb]"
    summary = run_training(["trainer=debug", loggers], tmp_path / "logs")
    run_dir = Path(summary["run_dir"])
    events = EventAccumulator(str(run_dir))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"val/acc", "test/acc", "train/loss"} <= scalars

    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'logs' / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "mlp-digits"]
    (run,) = client.search_runs([experiment.experiment_id])
    scalars -= {t for t in scalars if t.startswith("hp/")}  # HPARAMS' metric: TensorBoard's
    assert set(run.data.metrics) == scalars  # "epoch" too: Lightning logs it to each
    assert run.data.tags["run_dir"] == str(run_dir)
    assert run.data.metrics["test/acc"] == pytest.approx(summary["metrics"]["test/acc"])

    (file,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    history, config = set(), set()
    for record in wandb_records(file):
        kind = record.WhichOneof("record_type")
        items = {"history": record.history.item, "config": record.config.update}.get(kind, [])
        keys = {i.key or "/".join(i.nested_key) for i in items}
        (history if kind == "history" else config).update(keys)
    assert scalars <= history
    assert config == set(run.data.params) and "model/optimizer/lr" in config


def test_a_logger_that_cannot_be_built_is_one_line_naming_its_key(tmp_path: Path) -> None:
    """Building a logger (its constructor) fails before start_loggers' first contact: an
    MLflow tracking_uri the client refuses (a file: store, an unknown scheme) was the client's
    exception alone; now the line names logger.<key>, the class and the URI."""
    from omegaconf import OmegaConf

    from mlzoo.base.errors import ZooError
    from mlzoo.run.build import instantiate_all

    csv = {"_target_": "lightning.pytorch.loggers.CSVLogger", "save_dir": str(tmp_path), "nope": 1}
    cfg = OmegaConf.create({"logger": {"csv": csv}, "callbacks": {"x": None}})
    assert instantiate_all(cfg.callbacks, "callbacks") == []
    with pytest.raises(ZooError) as caught:
        instantiate_all(cfg.logger, "logger")
    message = str(caught.value)
    assert message.startswith("logger.csv (CSVLogger) could not be built: TypeError: ")
    assert "nope" in message and "\n" not in message and caught.value.__cause__ is None
    if importlib.util.find_spec("mlflow"):
        for uri in ("bogus://nowhere", f"file:{tmp_path / 'mlruns'}"):
            mlflow = {"_target_": "lightning.pytorch.loggers.MLFlowLogger", "tracking_uri": uri}
            cfg = OmegaConf.create({"logger": {"mlflow": mlflow}})
            try:
                loggers = instantiate_all(cfg.logger, "logger")
            except ZooError as err:
                assert str(err).startswith(
                    f"logger.mlflow (MLFlowLogger) could not be built at tracking_uri={uri}: "
                ), err
                assert len(str(err)) < 420
            else:  # a file store this MLflow version still accepts
                assert uri.startswith("file:") and len(loggers) == 1


@pytest.mark.slow
def test_mlflow_ui_as_the_readme_starts_it_shows_the_run(tmp_path: Path) -> None:
    """`pip install 'mlzoo[loggers]'` installs the UI too: the README's command serves the run."""
    import json
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    pytest.importorskip("mlflow")  # (mlflow-skinny alone, with no UI, fails here)
    run_training(["trainer=debug", "logger=mlflow"], tmp_path / "logs")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mlflow = Path(sys.executable).with_name("mlflow")
    ui = subprocess.Popen(
        [str(mlflow), "ui", "--backend-store-uri", "sqlite:///logs/mlflow.db", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search"
    request = urllib.request.Request(
        url, data=b'{"max_results": 10}', headers={"Content-Type": "application/json"}
    )
    try:
        deadline, found = time.time() + 300, None  # its workers start in ~10 s, ~60 s under load
        while found is None and time.time() < deadline and ui.poll() is None:
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    found = json.loads(answer.read())
            except OSError:
                time.sleep(2)
    finally:
        ui.terminate()
        _, err = ui.communicate(timeout=60)
    assert found is not None, err.decode()[-2000:]
    assert "mlp-digits" in [e["name"] for e in found["experiments"]]
