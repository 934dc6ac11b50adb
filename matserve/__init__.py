"""matserve: relax, generate and predict materials behind one Triton-backed service."""

__version__ = "0.1.0"
