"""Inspection: what a trained model does. Token surprise, the logit lens, attention maps, the
batch behind a step, memorization reports and model descriptions. Never imports generate."""
