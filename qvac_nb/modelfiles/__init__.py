"""Model file checks, one job per module: `reading` (open and check a file), `formats` (headers),
`detection` (which family, structure checks), `companions` (companion fit)."""
