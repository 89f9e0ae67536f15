"""KServe serving of registered models, pinned from the registry at deploy time."""
