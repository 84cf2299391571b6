"""What SFT and DPO share about their policy beyond the algorithm: checkpoints of the weights
that train only, and the policy as a Hugging Face model for export.

A LoRA model's base and DPO's reference copy never change during a run, and the concept gets them
again from where they came from (the Hugging Face folder, the SFT checkpoint) whenever it is
built, so a checkpoint leaves them out (SmolLM2 with LoRA: 3 MB instead of 540 MB).
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn


def frozen_keys(module: nn.Module) -> set[str]:
    """State-dict keys of the frozen weights. Judged per tensor: a weight tied to a trained one
    (the GPT's head and its embedding) is trained; buffers stay."""
    state = module.state_dict(keep_vars=True)
    return {k for k, v in state.items() if isinstance(v, nn.Parameter) and not v.requires_grad}


class TrainedWeightsOnly:
    """A LightningModule mixin: checkpoints hold the weights that train, not the frozen ones.
    Loading accepts a checkpoint without them, and only without them."""

    def rebuilt_keys(self) -> set[str]:
        """What checkpoints leave out (mlzoo.run.resume.check_fits does not ask for it)."""
        return frozen_keys(self)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        frozen = frozen_keys(self)
        state = checkpoint["state_dict"]
        checkpoint["state_dict"] = {k: v for k, v in state.items() if k not in frozen}

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        missing = set(self.state_dict()) - set(state_dict)
        if strict and missing and missing <= frozen_keys(self):
            unexpected = set(state_dict) - set(self.state_dict())
            if unexpected:
                raise RuntimeError(f"Unexpected key(s) in state_dict: {sorted(unexpected)[:5]}")
            strict = False  # the frozen weights are already here, from the policy's source
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def exported_policy(lm: nn.Module, tokenizer: Any) -> tuple[nn.Module, Any] | None:
    """What ``--format hf`` writes for a policy: a copy of its transformers model with the LoRA
    adapter folded in (W <- W + (alpha / r) B A: a plain model, no peft needed to run it) and its
    transformers tokenizer (with its chat template). A copy, so that the exporter's cast to
    another dtype leaves the policy as it is. None for the zoo's GPT, or for a policy trained with
    the zoo's character tokenizer (transformers cannot save that one beside the model)."""
    hf, tok = getattr(lm, "hf", None), getattr(tokenizer, "tok", None)
    if hf is None or tok is None:  # not mlzoo.lm.hf.HFCausalLM with its own tokenizer
        return None
    hf = copy.deepcopy(hf)
    return (hf.merge_and_unload() if lm.has_adapter else hf), tok
