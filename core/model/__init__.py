"""The model: GPT-2 in nanoGPT's names, the fused output-layer loss, parameter counts.

Pure math: imports only core.config, no I/O."""
