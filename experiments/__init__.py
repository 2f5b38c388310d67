"""Experiments on top of rules, data and the crossbar machine, in four rooms of one kind each:

    run/        one training run: settings, set-up, resume, the loop, scoring, its folder and files
    measure/    what is measured while it trains: alignment, update fidelity, hardware cost
    studies/    studies made of runs: compare, sweep, robustness, report, rhm-pstar, theory
    reference/  reference twins: the same network in torch, aihwkit-native training, step timing

studies/ stands on run/ and measure/, run/ on measure/; reference/ stands apart (tests/test_architecture.py).
"""
