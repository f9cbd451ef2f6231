"""autobert_zero.evolve — placeholder."""
