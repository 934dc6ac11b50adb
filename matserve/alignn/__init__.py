"""ALIGNN in plain PyTorch (no DGL): periodic neighbour graph, line graph of bond angles, model."""
