"""Generator of spec/vectors from the reference implementation."""
