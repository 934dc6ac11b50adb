"""CrystaLLM-compatible crystal generation: a GPT-2 that writes CIF text.

vocab, tokenizer: CrystaLLM's 371 tokens and its CIF tokenization.
model, kv_cache, checkpoint: the nanoGPT network, its decoding cache, CrystaLLM's ckpt.pt.
sampler: cached, batched sampling (and the plain loop it is checked against).
prompt, cif_format, validity: what goes in, what comes out, and whether it is a crystal.
"""
