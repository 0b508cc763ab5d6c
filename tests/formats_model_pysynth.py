#!/usr/bin/env python3
"""numpy + safetensors equivalent of `marlin-synth OUT --preset llama2-7b --layers 2`,
the Python baseline of docs/perf.md (formats-model section). Usage: python3 THIS OUT.safetensors"""
import sys, numpy as np
from safetensors.numpy import save_file
rng = np.random.default_rng(0)
h, q, kv, inter, vocab, L = 4096, 4096, 4096, 11008, 32000, 2
d = {}
def lin(name, a, b): d[name] = (rng.standard_normal((a, b), dtype=np.float32) * 0.02).astype(np.float16)
def norm(name, a): d[name] = (1 + rng.standard_normal(a, dtype=np.float32) * 0.02).astype(np.float16)
lin("model.embed_tokens.weight", vocab, h)
for l in range(L):
    p = "model.layers.%d." % l
    lin(p + "self_attn.q_proj.weight", q, h); lin(p + "self_attn.k_proj.weight", kv, h)
    lin(p + "self_attn.v_proj.weight", kv, h); lin(p + "self_attn.o_proj.weight", h, q)
    lin(p + "mlp.gate_proj.weight", inter, h); lin(p + "mlp.up_proj.weight", inter, h)
    lin(p + "mlp.down_proj.weight", h, inter)
    norm(p + "input_layernorm.weight", h); norm(p + "post_attention_layernorm.weight", h)
norm("model.norm.weight", h); lin("lm_head.weight", vocab, h)
save_file(d, sys.argv[1], metadata={"format": "pt"})
