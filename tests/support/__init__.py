"""Helpers the test modules share (test modules never import each other): paths, tiny configs and models,
custom languages, GLUE files, hostile payloads."""
