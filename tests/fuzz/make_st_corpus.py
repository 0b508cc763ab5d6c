#!/usr/bin/env python3
"""Regenerates the seed corpus of fuzz_st_header (tests/fuzz/corpus/st_header/).

Sources:
  - the evil-input table of tests/test_safetensors.c (safetensors.md section 6),
    written by `test_safetensors --dump-evil DIR` so that the table stays the
    single source of those bytes (cases 7 and 77 are left out: 100 MB / 1 MB);
  - valid files written by Python's safetensors (the reference writer): every
    dtype, metadata, empty and scalar tensors, escaped and non-ASCII names, a
    small Llama-shaped shard; plus hand-made valid variants the reference
    writer never emits (leading whitespace, unpadded header, shuffled entry
    order, unknown fields).

Usage: tests/fuzz/make_st_corpus.py BUILD_DIR   (BUILD_DIR has tests/test_safetensors)
Deterministic: same inputs, same bytes.
"""
import ctypes
import os
import struct
import subprocess
import sys

import safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "st_header")

DTYPES = {  # name: bits
    "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8,
    "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32,
    "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64,
}


# Python binding dtype names (bindings/python/src/lib.rs parse_dtype_str);
# the binding has no F6 types: F6 seeds are written by hand below.
TORCH = {
    "BOOL": "bool", "F4": "float4_e2m1fn_x2", "U8": "uint8", "I8": "int8",
    "F8_E5M2": "float8_e5m2", "F8_E4M3": "float8_e4m3fn",
    "F8_E8M0": "float8_e8m0fnu", "F8_E4M3FNUZ": "float8_e4m3fnuz",
    "F8_E5M2FNUZ": "float8_e5m2fnuz", "I16": "int16", "U16": "uint16",
    "F16": "float16", "BF16": "bfloat16", "I32": "int32", "U32": "uint32",
    "F32": "float32", "C64": "complex64", "F64": "float64", "I64": "int64",
    "U64": "uint64",
}
_keep = []  # buffers must outlive serialize()


def pattern(n, seed):
    return bytes((i * 31 + seed) & 0xFF for i in range(n))


def tensor(dtype, shape, seed=1):
    numel = 1
    for d in shape:
        numel *= d
    data = pattern(numel * DTYPES[dtype] // 8, seed)
    buf = ctypes.create_string_buffer(data, max(len(data), 1))
    _keep.append(buf)
    shape = list(shape)
    if dtype == "F4":  # the binding takes the storage shape (2 per byte)
        shape[-1] //= 2
    return safetensors.TensorSpec(dtype=TORCH[dtype], shape=shape,
                                  data_ptr=ctypes.addressof(buf),
                                  data_len=len(data))


def raw(header, data=b"", pad=True):
    h = header.encode() if isinstance(header, str) else header
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def valid_files():
    out = {}
    ser = safetensors.serialize
    out["valid-all-dtypes"] = ser(
        {f"t.{dt.lower()}": tensor(dt, [3, 4], i) for i, dt in enumerate(DTYPES)
         if dt in TORCH},
        metadata={"format": "pt", "note": "all dtypes"})
    out["valid-empty"] = ser({})
    out["valid-metadata-only"] = ser({}, metadata={"format": "pt"})
    out["valid-scalar-empty"] = ser({
        "scalar": tensor("F32", []), "empty": tensor("I32", [2, 0]),
        "empty2": tensor("F16", [0]), "x": tensor("BF16", [5])})
    out["valid-names"] = ser({
        "": tensor("U8", [1]), "a\u0000b": tensor("U8", [2]),
        "\u00e9\u4e2d\U0001f600": tensor("F16", [2]),
        'q"uote\\back/slash\n\t\x01': tensor("I8", [3])},
        metadata={"k\u00e9y": "v\u0000al\n"})
    llama = {}
    h, i, kv, v = 16, 24, 8, 32
    llama["model.embed_tokens.weight"] = tensor("F16", [v, h], 1)
    for layer in range(2):
        p = f"model.layers.{layer}."
        for name, shape in [("self_attn.q_proj", [h, h]), ("self_attn.k_proj", [kv, h]),
                            ("self_attn.v_proj", [kv, h]), ("self_attn.o_proj", [h, h]),
                            ("mlp.gate_proj", [i, h]), ("mlp.up_proj", [i, h]),
                            ("mlp.down_proj", [h, i])]:
            llama[p + name + ".weight"] = tensor("F16", shape, layer + 2)
        llama[p + "input_layernorm.weight"] = tensor("F16", [h], 5)
        llama[p + "post_attention_layernorm.weight"] = tensor("F16", [h], 6)
    llama["model.norm.weight"] = tensor("F16", [h], 7)
    llama["lm_head.weight"] = tensor("F16", [v, h], 8)
    out["valid-llama-tiny"] = ser(llama, metadata={"format": "pt"})
    # experts-style names, BF16, like the benchmark header (shapes tiny)
    out["valid-experts-bf16"] = ser({
        f"model.layers.{l}.mlp.experts.{k}.{p}.weight": tensor("BF16", [2, 2], k)
        for l in range(2) for k in range(8) for p in ("gate_proj", "up_proj", "down_proj")})
    # variants the reference writer never emits, all valid
    t = '{"dtype":"F32","shape":[2],"data_offsets":[%d,%d]}'
    out["valid-leading-ws"] = raw("\n\t \r{\"a\":" + t % (0, 8) + "}", pattern(8, 3))
    out["valid-unpadded"] = raw("{\"a\":" + t % (0, 8) + "}", pattern(8, 3), pad=False)
    out["valid-shuffled"] = raw(
        '{"b":' + t % (8, 16) + ',"__metadata__":{"format":"pt"},"a":' + t % (0, 8) + "}",
        pattern(16, 4))
    out["valid-unknown-fields"] = raw(
        '{"a":{"x":[1,2.5e-3,{"y":null,"z":[true,false]}],"dtype":"F32","shape":[2],'
        '"data_offsets":[0,8],"w":"\\u00e9"}}', pattern(8, 5))
    out["valid-escaped-keys"] = raw(
        '{"\\u005f_metadata__":{"a":"b"},"t":{"\\u0064type":"\\u0046\\u0031\\u0036",'
        '"shape":[1],"d\\u0061ta_offsets":[0,2]}}', pattern(2, 6))
    out["valid-f6"] = raw(
        '{"a":{"dtype":"F6_E2M3","shape":[4],"data_offsets":[0,3]},'
        '"b":{"dtype":"F6_E3M2","shape":[2,4],"data_offsets":[3,9]}}', pattern(9, 8))
    out["valid-metadata-null"] = raw('{"__metadata__":null,"a":' + t % (0, 8) + "}",
                                     pattern(8, 7))
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    binary = os.path.join(sys.argv[1], "tests", "test_safetensors")
    os.makedirs(OUT, exist_ok=True)
    subprocess.run([binary, "--dump-evil", OUT], check=True)
    for name, data in valid_files().items():
        # every valid seed must load in the reference, or it is not valid
        data = bytes(data)
        safetensors.deserialize(data)
        with open(os.path.join(OUT, name + ".safetensors"), "wb") as f:
            f.write(data)
    print(f"{len(os.listdir(OUT))} seeds in {OUT}")


if __name__ == "__main__":
    main()
