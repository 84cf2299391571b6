"""How a run is built, resumed, loaded, checked and guarded: the command line (train.py), the
checkpoint reader and loader, the trust check on configs and checkpoints, file-system faults,
sweeps and export. Concepts, nets, data, rl, lm, metrics and callbacks never import it."""
