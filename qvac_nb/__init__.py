"""qvac_nb: local, private image generation inside Jupyter."""
