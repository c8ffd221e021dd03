"""PURE builders: spec models in, manifest dicts out. No I/O, no clocks, no randomness."""
