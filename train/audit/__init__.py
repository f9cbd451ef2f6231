"""autobert_zero.train.audit."""
