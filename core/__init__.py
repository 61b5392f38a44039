"""The core: training, the formats on disk and model inspection, without Streamlit.

Layers (tests/test_layers.py checks every import against them):

    config, units, atomic,   settings, readable units, atomic file writes, the one reading rule
    jsonfile, schedule       for our JSON files and the learning-rate schedule; import nothing
                             from core but each other
    device, data, model      import only the five above
    store                    the formats on disk, one owner each; imports device, data, model
    dynamics                 per-eval measurements and stored-series analysis; imports the above
    generate, inspect        use what is above, never each other
    train                    the engine and its command line; never imports inspect
    runs                     launcher, queue, pre-launch checks; never imports train (it spawns it)

The dashboard may import anything; nothing in core imports streamlit or dashboard.
"""
