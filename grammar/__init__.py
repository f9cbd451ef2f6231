"""autobert_zero.grammar — placeholder."""
