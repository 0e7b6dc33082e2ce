"""The song library: files and their uploads, listing, audio checks, names and paths."""
