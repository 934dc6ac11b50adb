"""The FastAPI gateway in front of Triton."""
