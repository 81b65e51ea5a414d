"""Getting a model's weights: the files MODEL names, the built-in model, loading them, packing them for a CPU."""
