"""The procedure log: recording, validating, amending and importing procedures."""
