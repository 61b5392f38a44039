"""Training: the engine and its process plumbing, the optimizer and schedule, the time and memory
estimate, and the command line `python -m core.train`. Never imports inspect."""
