"""Scores beside the model (training and inference use them): metrics as GLUE reports them, computed
from packed or unpacked predictions.
"""
