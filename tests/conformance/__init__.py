"""Black-box conformance suite: checks any implementation against spec/ and spec/vectors."""
