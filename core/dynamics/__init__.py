"""Training dynamics: how and when a run learns, and where it is going. Measurements the engine
takes at each eval on fixed probes, and what the pages derive from stored series (forecasts,
baselines, estimators). Imports device, data, model and store; train and inspect may import it."""
