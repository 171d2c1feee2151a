"""Checking what a caller passes, in one place, split by what is checked:

- `values`: one value against its type and range (an int in 1-150, a path, a sampler name);
- `tables`: a call's keyword arguments against its parameter table (qvac_nb/schema.py): unknown and
  camelCase names, defaults per family, every value through `values`;
- `guards`: what passes the tables but would crash the engine or silently change its output for this
  model (sizes per family, memory, schedulers, block indices, image inputs).
"""
