"""Process control: the launcher, the run queue and the pre-launch checks. No torch at import,
and never core.train: the engine runs in its own process."""
