#!/usr/bin/env python3
"""Cross-checks for tests/test_formats_model.c against Python's safetensors.

  writer SPEC.json DIR   DIR holds what our writer produced for the tensors
                         described in SPEC.json ({"limit": N, "tensors":
                         [{"name", "dtype", "shape"}]}, declaration order).
                         Every tensor's bytes follow the formula in
                         tensor_bytes() (the C test uses the same one).
                         Checks, for each file we wrote, that Python's
                         safetensors serialises the same tensors to the same
                         bytes, that it deserialises our file to the expected
                         tensors, and (sharded) that the index is exactly
                         json.dumps(indent=2, sort_keys=True) + "\\n" with the
                         right total_size, and that huggingface_hub (when
                         installed) splits the tensors the same way.
Exit 0 on success, 1 on a mismatch (printed), 77 when a module is missing.
"""
import json
import os
import sys

try:
    import numpy as np
    from safetensors import TensorSpec, deserialize, serialize
except ImportError as e:  # the C test checks first; belt and braces
    print("skip: %s" % e)
    sys.exit(77)

TORCH_NAME = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "F8_E5M2": "float8_e5m2",
    "F8_E4M3": "float8_e4m3fn", "F8_E8M0": "float8_e8m0fnu",
    "F8_E4M3FNUZ": "float8_e4m3fnuz", "F8_E5M2FNUZ": "float8_e5m2fnuz",
    "I16": "int16", "U16": "uint16", "F16": "float16", "BF16": "bfloat16",
    "I32": "int32", "U32": "uint32", "F32": "float32", "C64": "complex64",
    "F64": "float64", "I64": "int64", "U64": "uint64",
    "F4": "float4_e2m1fn_x2",
}
BITS = {"BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8,
        "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "I16": 16,
        "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32,
        "C64": 64, "F64": 64, "I64": 64, "U64": 64, "F4": 4}


def nbytes(t):
    n = 1
    for d in t["shape"]:
        n *= d
    return n * BITS[t["dtype"]] // 8


def tensor_bytes(j, t):
    """Byte k of tensor j: (k*131 + j*17 + 7) mod 256; BOOL: (k+j) mod 2."""
    k = np.arange(nbytes(t), dtype=np.uint64)
    if t["dtype"] == "BOOL":
        return ((k + j) & 1).astype(np.uint8)
    return ((k * 131 + j * 17 + 7) & 0xFF).astype(np.uint8)


def reference_file(items):
    """What Python's safetensors writes for [(j, t)], metadata format=pt."""
    keep = []
    specs = {}
    for j, t in items:
        buf = np.ascontiguousarray(tensor_bytes(j, t))
        keep.append(buf)
        shape = list(t["shape"])
        if t["dtype"] == "F4":  # the binding takes torch's storage shape
            shape[-1] //= 2
        specs[t["name"]] = TensorSpec(dtype=TORCH_NAME[t["dtype"]],
                                      shape=shape, data_ptr=buf.ctypes.data,
                                      data_len=buf.nbytes)
    return serialize(specs, metadata={"format": "pt"})


def check_file(path, items, errors):
    ours = open(path, "rb").read()
    ref = reference_file(items)
    if ours != ref:
        n = next((i for i in range(min(len(ours), len(ref)))
                  if ours[i] != ref[i]), min(len(ours), len(ref)))
        errors.append("%s: differs from Python's bytes at offset %d "
                      "(ours %d bytes, Python %d)\n ours: %r\n  ref: %r"
                      % (path, n, len(ours), len(ref), ours[max(0, n - 40):n + 40],
                         ref[max(0, n - 40):n + 40]))
    # Python must read our file back to the expected tensors.
    got = dict(deserialize(ours))
    if set(got) != {t["name"] for _, t in items}:
        errors.append("%s: Python reads names %r" % (path, sorted(got)))
    for j, t in items:
        g = got.get(t["name"])
        if g is None:
            continue
        if bytes(g["data"]) != tensor_bytes(j, t).tobytes():
            errors.append("%s: tensor %r: data differs" % (path, t["name"]))
        if list(g["shape"]) != list(t["shape"]):
            errors.append("%s: tensor %r: shape %r" % (path, t["name"], g["shape"]))


def writer(spec_path, out_dir):
    spec = json.load(open(spec_path))
    tensors = spec["tensors"]
    errors = []
    files = sorted(f for f in os.listdir(out_dir) if f.endswith(".safetensors"))
    index_path = os.path.join(out_dir, "model.safetensors.index.json")
    if files == ["model.safetensors"]:
        if os.path.exists(index_path):
            errors.append("single file but an index exists")
        check_file(os.path.join(out_dir, files[0]), list(enumerate(tensors)), errors)
    else:
        text = open(index_path, encoding="utf-8").read()
        index = json.loads(text)
        if text != json.dumps(index, indent=2, sort_keys=True) + "\n":
            errors.append("index text is not json.dumps(indent=2, sort_keys=True)")
        total = sum(nbytes(t) for t in tensors)
        if index["metadata"]["total_size"] != total:
            errors.append("total_size %r != %d" % (index["metadata"]["total_size"], total))
        wm = index["weight_map"]
        if set(wm) != {t["name"] for t in tensors}:
            errors.append("weight_map names differ")
        if sorted(set(wm.values())) != files:
            errors.append("shard files %r vs index %r" % (files, sorted(set(wm.values()))))
        n = len(files)
        for i, f in enumerate(files):
            if f != "model-%05d-of-%05d.safetensors" % (i + 1, n):
                errors.append("shard name %s" % f)
            items = [(j, t) for j, t in enumerate(tensors) if wm.get(t["name"]) == f]
            check_file(os.path.join(out_dir, f), items, errors)
        try:
            from huggingface_hub.serialization import (
                split_state_dict_into_shards_factory as split_factory)
        except ImportError:
            print("note: huggingface_hub not installed; shard split not cross-checked")
        else:
            sd = {t["name"]: tensor_bytes(j, t) for j, t in enumerate(tensors)}
            split = split_factory(sd, get_storage_size=lambda a: a.nbytes,
                                  filename_pattern="model{suffix}.safetensors",
                                  max_shard_size=spec["limit"])
            if split.tensor_to_filename != wm:
                errors.append("huggingface_hub splits differently: %r"
                              % split.tensor_to_filename)
            else:
                print("huggingface_hub splits the same way")
    for e in errors:
        print("MISMATCH:", e)
    print("checked %d tensors in %d file(s): %s"
          % (len(tensors), len(files), "FAIL" if errors else "ok"))
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "writer":
        sys.exit(writer(sys.argv[2], sys.argv[3]))
    print(__doc__)
    sys.exit(2)
