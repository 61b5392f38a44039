"""Generation: sampling as pure functions of logits, streamed tokens, and the command line
`python -m core.generate`."""
