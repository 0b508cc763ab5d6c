/*
 * fuzz_index.c - libFuzzer target for the model.safetensors.index.json
 * parser (marlin_index_parse, formats/model_index.c). Besides "no crash, no
 * leak, no UB", it checks the parser's promises on every accepted input:
 * tensors sorted and unique, each mapped to one of the listed shards, shard
 * names sorted, unique and plain (safetensors.md case 86).
 */
#include "marlin_formats.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    marlin_index *ix = NULL;
    marlin_error err;
    if (marlin_index_parse((const char *)data, size, "fuzz.index.json", &ix,
                           &err) != MARLIN_OK) {
        if (ix || !err.msg[0] || strchr(err.msg, '\n')) __builtin_trap();
        return 0;
    }
    size_t n = marlin_index_count(ix), ns = marlin_index_shard_count(ix);
    if (n == 0 || ns == 0 || ns > n) __builtin_trap();
    for (size_t i = 0; i < ns; i++) {
        const char *s = marlin_index_shard(ix, i);
        if (!s[0] || strchr(s, '/') || strchr(s, '\\') || strstr(s, ".."))
            __builtin_trap();
        if (i && strcmp(marlin_index_shard(ix, i - 1), s) >= 0) __builtin_trap();
    }
    for (size_t i = 0; i < n; i++) {
        const char *t = marlin_index_tensor(ix, i);
        const char *s = marlin_index_tensor_shard(ix, i);
        if (i && strcmp(marlin_index_tensor(ix, i - 1), t) >= 0) __builtin_trap();
        if (marlin_index_find(ix, t) != s) __builtin_trap();
    }
    for (size_t i = 0; i < marlin_index_warning_count(ix); i++)
        if (!marlin_index_warning(ix, i)) __builtin_trap();
    marlin_index_free(ix);
    return 0;
}
