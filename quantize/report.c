/*
 * report.c - the JSON form of a marlin-quantize run (--report FILE).
 *
 * Keys (stable; marlin-batch reads them):
 *   {"tool": "marlin-quantize", "version", "method", "formats",
 *    "seconds", "bytes_in", "bytes_out", "tensors_copied",
 *    "notices": [str],
 *    "layers": [{"name", "n", "k", "group_size", "kept_fp16", "note",
 *                "rel_weight_err", "rel_out_err", "rtn_out_err", "loss", "damp",
 *                "fallback_rtn", "seconds"}],
 *    "max_rel_weight_err", "max_rel_out_err"}
 * Quantities that do not apply are null (e.g. rel_out_err for RTN).
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "marlin_pipeline.h"

static json_t *num_or_null(double v) {
    return v < 0 ? json_null() : json_real(v);
}

marlin_status marlin_qrun_report_write_json(const marlin_qrun_report *rep,
                                            const char *path,
                                            marlin_error *err) {
    marlin_status st = MARLIN_OK;
    json_t *root = json_object(), *layers = json_array(), *notices = json_array();
    char *text = NULL;
    double max_w = 0, max_o = -1;
    if (!root || !layers || !notices) {
        st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < rep->n_layers; i++) {
        const marlin_qlayer_report *l = &rep->layers[i];
        json_t *o = json_object();
        if (!o) { st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory"); goto out; }
        json_object_set_new(o, "name", json_string(l->name));
        json_object_set_new(o, "n", json_integer(l->n));
        json_object_set_new(o, "k", json_integer(l->k));
        json_object_set_new(o, "group_size", json_integer(l->group_size));
        json_object_set_new(o, "kept_fp16", json_boolean(l->kept_fp16));
        json_object_set_new(o, "note", l->note ? json_string(l->note) : json_null());
        json_object_set_new(o, "rel_weight_err",
                            l->kept_fp16 ? json_null() : json_real(l->rel_weight_err));
        json_object_set_new(o, "rel_out_err", num_or_null(l->rel_out_err));
        json_object_set_new(o, "rtn_out_err", num_or_null(l->rtn_out_err));
        json_object_set_new(o, "loss", num_or_null(l->loss));
        json_object_set_new(o, "damp", num_or_null(l->damp_rel));
        json_object_set_new(o, "fallback_rtn", json_boolean(l->fallback_rtn));
        json_object_set_new(o, "seconds", json_real(l->seconds));
        json_array_append_new(layers, o);
        if (!l->kept_fp16 && l->rel_weight_err > max_w) max_w = l->rel_weight_err;
        if (l->rel_out_err > max_o) max_o = l->rel_out_err;
    }
    for (size_t i = 0; i < rep->n_notices; i++)
        json_array_append_new(notices, json_string(rep->notices[i]));
    json_object_set_new(root, "tool", json_string("marlin-quantize"));
    json_object_set_new(root, "version", json_string(MARLIN_VERSION_STRING));
    json_object_set_new(root, "method", json_string(rep->method));
    json_object_set_new(root, "formats", json_string(rep->formats));
    json_object_set_new(root, "seconds", json_real(rep->seconds));
    json_object_set_new(root, "bytes_in", json_integer((json_int_t)rep->bytes_in));
    json_object_set_new(root, "bytes_out", json_integer((json_int_t)rep->bytes_out));
    json_object_set_new(root, "tensors_copied", json_integer((json_int_t)rep->n_copied));
    json_object_set_new(root, "max_rel_weight_err", json_real(max_w));
    json_object_set_new(root, "max_rel_out_err", num_or_null(max_o));
    json_object_set_new(root, "notices", notices);
    notices = NULL;
    json_object_set_new(root, "layers", layers);
    layers = NULL;
    text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8));
    if (!text) { st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory"); goto out; }
    st = marlin_write_path_atomic(path, text, strlen(text), err);
out:
    free(text);
    json_decref(layers);
    json_decref(notices);
    json_decref(root);
    return st;
}
