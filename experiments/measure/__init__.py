"""What is measured while a run trains: alignment with backprop, update fidelity, hardware cost
estimates from the crossbars' counts (cost, cost_table.json)."""
