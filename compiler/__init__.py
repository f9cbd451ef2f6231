"""autobert_zero.compiler — placeholder."""
