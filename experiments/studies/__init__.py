"""Studies made of runs: compare (analog vs exact), sweep, robustness, report, rhm-pstar
(rhm_study), and the linear-network theory checks (theory)."""
