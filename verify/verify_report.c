/*
 * verify_report.c - JSON form of a marlin-verify run (--json FILE).
 *   {"tool": "marlin-verify", "version", "pass", "formats", "algorithm",
 *    "device", "seconds", "layers_failed",
 *    "layers": [{"name", "format", "n", "k", "group_size", "cross_checked",
 *                "rel_weight_err", "step_err", "step_err_mean", "step_bound",
 *                "rel_out_err",
 *                "gpu_vs_ref", "gpu_vs_fp16", "gpu_bound", "pass", "why"}],
 *    "max_rel_weight_err", "max_step_err"}
 * Values not measured are null.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "marlin_formats.h"
#include "marlin_verify.h"

static json_t *num_or_null(double v) { return v < 0 ? json_null() : json_real(v); }

marlin_status marlin_verify_report_write_json(const marlin_verify_report *r,
                                              const char *path,
                                              marlin_error *err) {
    marlin_status st = MARLIN_OK;
    json_t *root = json_object(), *layers = json_array();
    char *text = NULL;
    double mw = -1, ms = -1;
    if (!root || !layers) { st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory"); goto out; }
    for (size_t i = 0; i < r->n_layers; i++) {
        const marlin_verify_layer *l = &r->layers[i];
        json_t *o = json_object();
        if (!o) { st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory"); goto out; }
        json_object_set_new(o, "name", json_string(l->name ? l->name : ""));
        json_object_set_new(o, "format", json_string(l->format));
        json_object_set_new(o, "n", json_integer(l->n));
        json_object_set_new(o, "k", json_integer(l->k));
        json_object_set_new(o, "group_size", json_integer(l->group_size));
        json_object_set_new(o, "cross_checked", json_boolean(l->cross_checked));
        json_object_set_new(o, "rel_weight_err", num_or_null(l->rel_weight_err));
        json_object_set_new(o, "step_err", num_or_null(l->step_err));
        json_object_set_new(o, "step_err_mean", num_or_null(l->step_err_mean));
        json_object_set_new(o, "step_bound", num_or_null(l->step_bound));
        json_object_set_new(o, "step_mean_bound", num_or_null(l->step_mean_bound));
        json_object_set_new(o, "rel_bound", num_or_null(l->rel_bound));
        json_object_set_new(o, "rel_out_err", num_or_null(l->rel_out_err));
        json_object_set_new(o, "gpu_vs_ref", num_or_null(l->gpu_vs_ref));
        json_object_set_new(o, "gpu_vs_fp16", num_or_null(l->gpu_vs_fp16));
        json_object_set_new(o, "gpu_bound", num_or_null(l->gpu_bound));
        json_object_set_new(o, "calib_acts", json_boolean(l->calib_acts));
        json_object_set_new(o, "pass", json_boolean(l->pass));
        json_object_set_new(o, "why", l->why ? json_string(l->why) : json_null());
        json_array_append_new(layers, o);
        if (l->rel_weight_err > mw) mw = l->rel_weight_err;
        if (l->step_err > ms) ms = l->step_err;
    }
    json_object_set_new(root, "tool", json_string("marlin-verify"));
    json_object_set_new(root, "version", json_string(MARLIN_VERSION_STRING));
    json_object_set_new(root, "pass", json_boolean(r->n_failed == 0 && r->n_layers > 0));
    json_object_set_new(root, "formats", json_string(r->formats));
    json_object_set_new(root, "algorithm", json_string(r->algorithm));
    json_object_set_new(root, "device", r->device[0] ? json_string(r->device) : json_null());
    json_object_set_new(root, "seconds", json_real(r->seconds));
    json_object_set_new(root, "layers_failed", json_integer((json_int_t)r->n_failed));
    json_object_set_new(root, "max_rel_weight_err", num_or_null(mw));
    json_object_set_new(root, "max_step_err", num_or_null(ms));
    json_object_set_new(root, "layers", layers);
    layers = NULL;
    text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8));
    if (!text) { st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory"); goto out; }
    st = marlin_write_path_atomic(path, text, strlen(text), err);
out:
    free(text);
    json_decref(layers);
    json_decref(root);
    return st;
}
