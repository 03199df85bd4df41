"""Where the endpoints come from: an explicit URL, discovery, or a preset (Genesys Cloud)."""
