"""Stage 4, training: the Hugging Face Trainer on packed rows and on the unpacked baselines."""
