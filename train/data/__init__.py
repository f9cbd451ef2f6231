"""autobert_zero.train.data."""
