"""Experiments on top of rules, data and the crossbar machine: train, bench (more to come)."""
