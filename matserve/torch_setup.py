"""Process-wide torch settings for model processes."""

import torch


def configure_torch(threads: int) -> None:
    """Use ``threads`` intra-op threads (0 keeps torch's default)."""
    if threads > 0:
        torch.set_num_threads(threads)
