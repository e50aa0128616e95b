"""Stage 2, tokens -> length histogram -> packing plan -> packed rows, and outputs back to their rows.

A new planner goes in `planners.py` and its name in `plan.ALGORITHMS`.
"""
