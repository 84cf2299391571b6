"""Exporting a trained zoo model: its networks as ONNX or TorchScript files, or its Hugging Face
model (adapters merged) as a folder. scripts/export.py is the command line.

What a model exports is the model's own answer (ZooModule.exported_networks, exported_facts,
exported_hf); how raw inputs become its inputs is its data module's (``describe_inputs()``: a
plain JSON-able dict, written as export.json's ``preprocessing``; the format is in the README,
"Using a trained model: predict and export"). This module only writes them, and knows no concept
or data set by name.

TorchScript (``--format torchscript``) is deprecated by PyTorch (torch.jit.trace and
torch.jit.save warn so from 2.x on); the files still load with torch.jit.load, and the warnings
are not shown. ONNX is the supported path (and torch.export for PyTorch programs).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

FORMATS = ("onnx", "torchscript", "hf")
ONNX_EXTRA = "pip install 'mlzoo[export]' (onnx, onnxscript; onnxruntime to run the file)"


def exported(model, fmt: str) -> Any:
    """What ``model`` exports as ``fmt``: its networks (name -> Exported) for onnx and
    torchscript, (transformers model, tokenizer) for hf. A ZooError, naming what the model does
    export, if it exports nothing in that format."""
    from mlzoo.base.errors import ZooError

    found = model.exported_hf() if fmt == "hf" else model.exported_networks()
    if not found:
        raise ZooError(_nothing_as(model, fmt))
    return found


def _nothing_as(model, fmt: str) -> str:
    from mlzoo.base.errors import listed

    name = type(model).__name__
    if fmt == "hf":
        networks = model.exported_networks()
        offer = f"--format onnx or torchscript ({listed(networks)})" if networks else "nothing"
        return (
            f"--format hf: {name} has no Hugging Face policy or model to export; it exports {offer}"
        )
    offer = "--format hf" if model.exported_hf() is not None else "nothing"
    return f"--format {fmt}: {name} has no exportable network; it exports {offer}"


def export(
    model,
    out: Path,
    fmt: str,
    dtype: str = "float32",
    what: Any = None,
    preprocessing: dict[str, Any] | None = None,
) -> None:
    """Write what ``model`` exports as ``fmt`` into the folder ``out`` (``what``: the answer of
    ``exported(model, fmt)`` when the caller has it already; ``preprocessing``: the data
    module's ``describe_inputs()``, see ``described_inputs``)."""
    what = exported(model, fmt) if what is None else what
    if fmt == "hf":
        export_hf(what, out, dtype)
    else:
        export_graphs(what, model.exported_facts(), out, fmt, preprocessing)


def described_inputs(datamodule: Any, saved: Any) -> tuple[dict[str, Any] | None, str | None]:
    """(the data module's description of its inputs, a note): ``describe_inputs()`` of the data
    module (one that has it), after loading ``saved``, its state in the checkpoint (the
    training run's class names and scaling, not those of the data files as they are now). A
    data module whose checkpoint holds no state (written before it saved one) gives no
    description, and a note saying so."""
    describe = getattr(datamodule, "describe_inputs", None)
    if describe is None:
        return None, None
    if saved:
        datamodule.load_state_dict(saved)
    elif datamodule.state_dict():  # it keeps a state, the checkpoint has none: not described
        name = type(datamodule).__name__
        return None, f"note: the checkpoint holds no {name} state: export.json has no preprocessing"
    return describe(), None


def export_hf(hf_and_tokenizer: tuple[Any, Any], out: Path, dtype: str) -> None:
    """A transformers model (adapters already merged) in ``dtype`` and its tokenizer (with its
    chat template), as a folder ``from_pretrained`` loads."""
    import torch

    hf, tokenizer = hf_and_tokenizer
    hf.to(getattr(torch, dtype)).save_pretrained(out)
    tokenizer.save_pretrained(out)


def export_graphs(
    networks: dict[str, Any],
    facts: dict[str, Any],
    out: Path,
    fmt: str,
    preprocessing: dict[str, Any] | None = None,
) -> None:
    """Each network to out/<name>.onnx or .pt (traced: the batch size is free), and export.json
    naming their inputs and outputs, with the model's facts beside them and the data's
    ``preprocessing`` (raw input -> network input, output -> answer), when there is one."""
    import torch

    from mlzoo.base.errors import ZooError

    manifest: dict[str, Any] = {"format": fmt, "networks": {}}
    for name, (module, inputs, in_names, out_names) in networks.items():
        module.eval()
        file = out / f"{name}.{'onnx' if fmt == 'onnx' else 'pt'}"
        try:
            with torch.no_grad():
                if fmt == "onnx":
                    batch = torch.export.Dim("batch", min=1)
                    torch.onnx.export(
                        module,
                        inputs,
                        file,
                        input_names=in_names,
                        output_names=out_names,
                        dynamic_shapes=[{0: batch} for _ in inputs],
                        dynamo=True,
                        verbose=False,
                    )
                else:
                    with warnings.catch_warnings():  # deprecated: see the module docstring
                        warnings.filterwarnings(
                            "ignore", r"`torch\.jit\.\w+` is deprecated", FutureWarning
                        )
                        traced = torch.jit.trace(module, inputs, check_trace=False)
                        torch.jit.save(traced, file)
        except ImportError as err:
            raise ZooError(f"--format {fmt} needs {err.name or err}: {ONNX_EXTRA}") from None
        manifest["networks"][name] = {
            "file": file.name,
            "inputs": {
                n: [list(x.shape[1:]), str(x.dtype)] for n, x in zip(in_names, inputs, strict=True)
            },
            "outputs": out_names,
        }
    if preprocessing is not None:
        manifest["preprocessing"] = preprocessing
    clash = sorted(set(facts) & {*manifest, "preprocessing"})
    if clash:
        raise ValueError(f"exported_facts may not name {clash}: export.json's own keys")
    manifest.update(facts)
    (out / "export.json").write_text(json.dumps(manifest, indent=2) + "\n")
