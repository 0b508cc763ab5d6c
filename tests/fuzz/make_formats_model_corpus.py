#!/usr/bin/env python3
"""Writes the seed corpora of fuzz_index and fuzz_config (committed files;
re-run after editing the lists): valid files plus the evil cases of
safetensors.md section 6 (86-93) and config edge cases.
Usage: tests/fuzz/make_formats_model_corpus.py   (from anywhere)"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
S1 = "model-00001-of-00002.safetensors"
S2 = "model-00002-of-00002.safetensors"


def idx(wm, total=12, extra=None):
    meta = {"total_size": total}
    meta.update(extra or {})
    return json.dumps({"metadata": meta, "weight_map": wm}, indent=2, sort_keys=True) + "\n"


INDEX = {
    "valid_two_shards": idx({"a": S1, "b": S1, "c": S2}),
    "valid_total_parameters": idx({"a": S1, "c": S2}, extra={"total_parameters": 6}),
    "valid_no_total": '{"metadata":{},"weight_map":{"a":"x.safetensors"}}',
    "valid_unicode": idx({"caf\u00e9.w": S1, "\U0001F600": S2}),
    "valid_off_pattern": idx({"a": "part-a.safetensors", "b": "model-00002-of-00003.safetensors"}),
    "evil_dotdot": idx({"a": "../x.safetensors", "b": S1}),
    "evil_absolute": idx({"a": "/etc/passwd"}),
    "evil_subdir": idx({"a": "sub/x.safetensors"}),
    "evil_backslash": idx({"a": "sub\\x.safetensors"}),
    "evil_nul": '{"metadata":{"total_size":1},"weight_map":{"a":"x\\u0000.safetensors"}}',
    "evil_empty_name": idx({"a": ""}),
    "evil_number_value": '{"metadata":{"total_size":1},"weight_map":{"a":7}}',
    "evil_null_value": '{"metadata":{"total_size":1},"weight_map":{"a":null}}',
    "evil_no_weight_map": '{"metadata":{"total_size":1}}',
    "evil_no_metadata": '{"weight_map":{"a":"x.safetensors"}}',
    "evil_empty_weight_map": '{"metadata":{},"weight_map":{}}',
    "evil_dup_key": '{"metadata":{"total_size":1},"weight_map":{"a":"x.safetensors","a":"y.safetensors"}}',
    "evil_total_negative": '{"metadata":{"total_size":-1},"weight_map":{"a":"x.safetensors"}}',
    "evil_total_real": '{"metadata":{"total_size":1.5},"weight_map":{"a":"x.safetensors"}}',
    "evil_total_huge": '{"metadata":{"total_size":18446744073709551616},"weight_map":{"a":"x.safetensors"}}',
    "evil_top_array": '[{"metadata":{}}]',
    "evil_truncated": '{"metadata":{"total_size":1},"weight_map":{"a":"x.safe',
    "evil_deep": '{"metadata":' + '[' * 3000 + ']' * 3000 + ',"weight_map":{"a":"b"}}',
    "evil_nan": '{"metadata":{"total_size":NaN},"weight_map":{"a":"x.safetensors"}}',
}

SHARED = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": False,
    "attention_dropout": 0.0, "bos_token_id": None, "dtype": "float16",
    "eos_token_id": None, "head_dim": 64, "hidden_act": "silu",
    "hidden_size": 512, "initializer_range": 0.02, "intermediate_size": 1536,
    "max_position_embeddings": 512, "mlp_bias": False, "model_type": "llama",
    "num_attention_heads": 8, "num_hidden_layers": 4, "num_key_value_heads": 4,
    "pad_token_id": None, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
    "tie_word_embeddings": False, "transformers_version": "5.17.0",
    "use_cache": True, "vocab_size": 256,
}
L3 = dict(SHARED, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
          num_attention_heads=32, num_key_value_heads=8, head_dim=128,
          vocab_size=128256, rope_theta=500000.0,
          rope_scaling={"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                        "original_max_position_embeddings": 8192, "rope_type": "llama3"})
del L3["rope_parameters"]
QWEN = {"model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864,
        "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
        "vocab_size": 151936, "rope_theta": 1000000.0, "tie_word_embeddings": True,
        "torch_dtype": "bfloat16", "quantization_config": {"bits": 8}}


def dumps(d):
    return json.dumps(d, indent=2, sort_keys=True) + "\n"


CONFIG = {
    "valid_shared": dumps(SHARED),
    "valid_llama3": dumps(L3),
    "valid_qwen2": dumps(QWEN),
    "valid_compact": json.dumps(SHARED, separators=(",", ":")),
    "valid_nan_fields": dumps(SHARED).replace('"pretraining_tp": 1', '"pretraining_tp": NaN, "clip": [-Infinity, Infinity]'),
    "valid_gpt2": '{"model_type":"gpt2","n_embd":768,"vocab_size":50257}',
    "valid_empty": "{}",
    "valid_yarn": dumps(dict(SHARED, rope_parameters={"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e6})),
    "evil_nan_eps": dumps(SHARED).replace('"rms_norm_eps": 1e-05', '"rms_norm_eps": NaN'),
    "evil_dup": '{"hidden_size":1,"hidden_size":2}',
    "evil_kv": dumps(dict(SHARED, num_key_value_heads=3)),
    "evil_longrope": dumps(dict(SHARED, rope_parameters={"rope_type": "longrope", "factor": 2.0})),
    "evil_types": '{"model_type":"llama","hidden_size":"512","num_hidden_layers":4.5}',
    "evil_strings": '{"a":"NaN \\" Infinity \\\\","b":"-Infinity","model_type":"llama\\u0000"}',
    "evil_truncated": dumps(SHARED)[:200],
    "evil_array": "[1,2,3]",
    "evil_bare_nan": "NaN",
    "evil_deep": '{"x":' + '[' * 3000 + ']' * 3000 + '}',
    "evil_escaped_keys": '{"torch\\u005fdtype":"bfloat16","quantization\\u005fconfig":NaN,"d\\u0074ype":null}',
}


def write(sub, table):
    d = os.path.join(HERE, "corpus", sub)
    os.makedirs(d, exist_ok=True)
    for name, text in table.items():
        with open(os.path.join(d, name + ".json"), "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    write("index", INDEX)
    write("config", CONFIG)
    print("wrote %d index and %d config seeds" % (len(INDEX), len(CONFIG)))
