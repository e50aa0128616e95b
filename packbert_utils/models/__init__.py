"""Stage 3, the packed model: masks, attention per sequence, the encoder families, checked inputs, losses and
the packed heads, and the exactness check against each sequence alone.

A new family goes in `families.py`; a new head in a module of its own beside `heads.py`.
"""
