"""Language-model plumbing shared by the SFT and DPO concepts: tokenizers, the synthetic task,
sequence log-probabilities and sampling."""
