"""The committed synthetic sample set (``samples/arnis``) and its generator script."""
