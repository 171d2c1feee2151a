"""Getting model files onto the disk: sources (what to fetch), transfer (HTTP), cache (where it lives).

`qvac_nb.download` puts them together (`resolve_source`) and is the public entry point.
"""
