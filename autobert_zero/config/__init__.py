"""autobert_zero.config."""
