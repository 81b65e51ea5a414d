"""Redis itself: the connection, every key, the Lua scripts behind each multi-key change, and heartbeats."""
