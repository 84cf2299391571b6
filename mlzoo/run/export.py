"""Exporting a trained zoo model: its networks as ONNX or TorchScript files, or its Hugging Face
model (adapters merged) as a folder. scripts/export.py is the command line.

What a model exports is the model's own answer (ZooModule.exported_networks, exported_facts,
exported_hf); this module only writes it, and knows no concept by name.
"""

from __future__ import annotations

import json
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


def export(model, out: Path, fmt: str, dtype: str = "float32", what: Any = None) -> None:
    """Write what ``model`` exports as ``fmt`` into the folder ``out`` (``what``: the answer of
    ``exported(model, fmt)`` when the caller has it already)."""
    what = exported(model, fmt) if what is None else what
    if fmt == "hf":
        export_hf(what, out, dtype)
    else:
        export_graphs(what, model.exported_facts(), out, fmt)


def export_hf(hf_and_tokenizer: tuple[Any, Any], out: Path, dtype: str) -> None:
    """A transformers model (adapters already merged) in ``dtype`` and its tokenizer (with its
    chat template), as a folder ``from_pretrained`` loads."""
    import torch

    hf, tokenizer = hf_and_tokenizer
    hf.to(getattr(torch, dtype)).save_pretrained(out)
    tokenizer.save_pretrained(out)


def export_graphs(networks: dict[str, Any], facts: dict[str, Any], out: Path, fmt: str) -> None:
    """Each network to out/<name>.onnx or .pt (traced: the batch size is free), and export.json
    naming their inputs and outputs, with the model's facts beside them."""
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
                    torch.jit.save(torch.jit.trace(module, inputs, check_trace=False), file)
        except ImportError as err:
            raise ZooError(f"--format {fmt} needs {err.name or err}: {ONNX_EXTRA}") from None
        manifest["networks"][name] = {
            "file": file.name,
            "inputs": {
                n: [list(x.shape[1:]), str(x.dtype)] for n, x in zip(in_names, inputs, strict=True)
            },
            "outputs": out_names,
        }
    clash = sorted(set(facts) & set(manifest))
    if clash:
        raise ValueError(f"exported_facts may not name {clash}: export.json's own keys")
    manifest.update(facts)
    (out / "export.json").write_text(json.dumps(manifest, indent=2) + "\n")
