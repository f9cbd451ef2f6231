"""autobert_zero.train — placeholder."""
