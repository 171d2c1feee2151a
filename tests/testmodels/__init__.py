"""Random-weight models in the real architectures, built once into a cache outside the repo."""
