"""Plumbing shared by every concept: errors, the optimizer-injecting base module, run folders."""
