"""Federation as pure code: server key objects, link statements and the federation ops
(spec/federation.md). No IO, no clocks, no randomness: callers pass times and nonces."""
