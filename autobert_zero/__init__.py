"""AutoBERT-Zero: evolve BERT backbones from primitive math operations.

The package's stages are sub-packages: `grammar` (text → IR), `compiler` (IR → torch.fx → HF model),
`train` (DeepSpeed pre-training and GLUE), `evolve` (OP-NAS search).
"""
