"""Stage 4, inference: packed predictors that return outputs in input order, reading inputs lazily."""
