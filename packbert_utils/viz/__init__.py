"""Figures for the notebooks and the README, drawn from data (never pasted in).

Packing figures in `packing_plots.py`, training and speed figures in `training_plots.py`, the README images in
`images.py`.
"""
