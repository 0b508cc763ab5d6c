/*
 * fuzz_config.c - libFuzzer target for config.json handling
 * (formats/config.c): marlin_config_parse on the bytes, and
 * marlin_config_rewrite splicing a quantization_config into them.
 * Properties checked on every input:
 *  - errors are one line, and parse failures leave the struct zeroed;
 *  - the rewrite never reports an internal error (its own self-check of
 *    the spliced text against the source), and its output parses;
 *  - when the source parses, the rewritten config parses to the same
 *    fields with torch_dtype "float16" and the spliced quantization_config
 *    (the splice changes nothing else).
 */
#include "marlin_formats.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char qc[] =
    "{\"quant_method\":\"gptq\",\"bits\":4,\"group_size\":128,"
    "\"damp_percent\":0.01,\"desc_act\":false,\"sym\":true,"
    "\"meta\":{\"quantizer\":[\"marlin\"]}}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    marlin_config a, b;
    marlin_error err;
    marlin_status sa = marlin_config_parse(text, size, "config.json", &a, &err);
    if (sa != MARLIN_OK) {
        if (a.present || strchr(err.msg, '\n')) __builtin_trap();
    }
    char *out = NULL;
    size_t len = 0;
    marlin_status sr = marlin_config_rewrite(text, size, "config.json", qc, &out,
                                             &len, &err);
    if (sr == MARLIN_ERR_INTERNAL) __builtin_trap();
    if (sr != MARLIN_OK) {
        if (out) __builtin_trap();
        /* a config that parses is always rewritable */
        if (sa == MARLIN_OK && sr != MARLIN_ERR_NOMEM) __builtin_trap();
        return 0;
    }
    if (strlen(out) != len) __builtin_trap();
    marlin_status sb = marlin_config_parse(out, len, "config.json", &b, &err);
    if (sa == MARLIN_OK) {
        if (sb != MARLIN_OK) __builtin_trap();
        if (strcmp(b.torch_dtype, "float16") != 0) __builtin_trap();
        /* the spliced quantization_config is read back as written */
        if (!b.quant.present || strcmp(b.quant.quant_method, "gptq") ||
            b.quant.bits != 4 || b.quant.group_size != 128 || b.quant.desc_act ||
            !b.quant.sym)
            __builtin_trap();
        memcpy(b.torch_dtype, a.torch_dtype, sizeof a.torch_dtype);
        memcpy(&b.quant, &a.quant, sizeof a.quant);
        if (memcmp(&a, &b, sizeof a) != 0) __builtin_trap();
    }
    free(out);
    return 0;
}
