"""Reinforcement learning: the agents' shared base (RLModule), gymnasium environments as data
modules, observation and reward normalisers."""
