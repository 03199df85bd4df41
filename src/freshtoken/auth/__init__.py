"""Library auth adapters: the broker's token on every request, and the one rule for a 401."""
