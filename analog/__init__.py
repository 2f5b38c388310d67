"""The crossbar machine: array backend, crossbars (exact, aihwkit), layers, networks."""
