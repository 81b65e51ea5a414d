"""Settings: their declarations, parsers, the one settings object, secrets, and the documentation printed from them."""
