"""The formats on disk, one owner each: the run directory, metrics records, checkpoints and
snapshots (and the inference loader), Hugging Face in (pretrained) and out (export).

Imports only config, device, data and model."""
