"""Plain nn.Modules shared by concepts (no Lightning, no config reading)."""
