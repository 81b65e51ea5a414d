"""The posting process: takes answers from Redis and posts them to Discord as replies, each exactly once."""
