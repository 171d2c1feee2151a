"""Model file checks, one job per module; `qvac_nb.model_files` is the entry point."""
