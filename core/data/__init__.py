"""Data: text in, tokens out, the batch walker and its checksum, the corpus index and the data
X-ray. Imports only core.config and core.units."""
