"""Token sources: the broker (cache, single flight, refresh-ahead) and the stores behind it."""
