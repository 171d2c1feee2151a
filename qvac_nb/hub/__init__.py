"""Getting model files onto the disk, with huggingface_hub doing the talking.

`sources` (addresses, checked against Hugging Face's rules), `hf` (Hugging Face files in the shared
hub cache), `transfer` (one file over HTTP: resume, verify, rename), `failures` (their errors as
DownloadErrors) and `cache` (where files live); `resolve` puts them together (`resolve_source`,
the cache listing and deletion the CLI uses).
"""
