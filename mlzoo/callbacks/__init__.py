"""Lightning callbacks shared by concepts (RNG state in checkpoints, images, RL evaluation, ...)."""
