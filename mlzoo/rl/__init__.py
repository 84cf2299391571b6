"""Reinforcement-learning plumbing: gymnasium environments as data modules, replay storage."""
