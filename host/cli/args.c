#include "args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Status args_parse(int argc, char **argv, ArgOpt *opts, int n_opts, const char *cmd) {
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0)
            return status_fail(ST_USAGE, "%s: unexpected argument '%s' (see 'elastilm %s --help')", cmd, a, cmd);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        ArgOpt *o = NULL;
        for (int j = 0; j < n_opts && !o; j++)
            if (strlen(opts[j].name) == len && strncmp(opts[j].name, name, len) == 0) o = &opts[j];
        if (!o) return status_fail(ST_USAGE, "%s: unknown option '%s' (see 'elastilm %s --help')", cmd, a, cmd);
        if (!o->takes_value) {
            if (eq) return status_fail(ST_USAGE, "%s: option --%s takes no value", cmd, o->name);
            o->value = "1";
        } else if (eq) {
            o->value = eq + 1;
        } else {
            if (i + 1 >= argc) return status_fail(ST_USAGE, "%s: option --%s needs a value", cmd, o->name);
            o->value = argv[++i];
        }
    }
    return ST_OK;
}

const char *args_get(const ArgOpt *opts, int n_opts, const char *name) {
    for (int j = 0; j < n_opts; j++)
        if (strcmp(opts[j].name, name) == 0) return opts[j].value;
    return NULL;
}

void args_print_help(const char *cmd, const char *summary, const ArgOpt *opts, int n_opts) {
    printf("usage: elastilm %s [options]\n%s\n\noptions:\n", cmd, summary);
    for (int j = 0; j < n_opts; j++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s", opts[j].name, opts[j].takes_value ? " VALUE" : "");
        printf("  %-22s %s\n", left, opts[j].help);
    }
}

Status args_int(const char *text, const char *opt, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || errno != 0 || v < lo || v > hi)
        return status_fail(ST_USAGE, "--%s: expected an integer in [%ld, %ld], got '%s'", opt, lo, hi, text);
    *out = v;
    return ST_OK;
}

Status args_float(const char *text, const char *opt, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || errno != 0 || !(v >= lo && v <= hi))
        return status_fail(ST_USAGE, "--%s: expected a number in [%g, %g], got '%s'", opt, lo, hi, text);
    *out = v;
    return ST_OK;
}

Status args_opt_int(const ArgOpt *opts, int n_opts, const char *name, long lo, long hi, long def, long *out) {
    const char *v = args_get(opts, n_opts, name);
    *out = def;
    return v ? args_int(v, name, lo, hi, out) : ST_OK;
}

Status args_opt_float(const ArgOpt *opts, int n_opts, const char *name, double lo, double hi, double def, double *out) {
    const char *v = args_get(opts, n_opts, name);
    *out = def;
    return v ? args_float(v, name, lo, hi, out) : ST_OK;
}
