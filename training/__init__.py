"""Training, evaluation and self-sampling of the embedded models: run from a checkout, not served.

Each script is one command (``python -m training.alignn.train``, ``training.generator.train``,
``training.plmf.train``, ...); the weights they write live beside the models in ``matserve/``.
"""
