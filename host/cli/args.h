// args.h: `--name value` and `--flag` options of one subcommand.
#ifndef ELASTILM_ARGS_H
#define ELASTILM_ARGS_H

#include <stdbool.h>

#include "runtime/status.h"

typedef struct {
    const char *name;  // without the dashes: "model"
    bool takes_value;  // false for flags such as --quiet
    const char *help;  // one line for `elastilm <cmd> --help`
    const char *value; // set by args_parse (the value, or "1" for a flag); NULL when absent
} ArgOpt;

// Fills opts[i].value from argv (options only, no positionals). Unknown
// options and missing values are ST_USAGE errors naming the option.
Status args_parse(int argc, char **argv, ArgOpt *opts, int n_opts, const char *cmd);
const char *args_get(const ArgOpt *opts, int n_opts, const char *name);
void args_print_help(const char *cmd, const char *summary, const ArgOpt *opts, int n_opts);

// Parses a whole decimal integer in [lo, hi]; the message names the option.
Status args_int(const char *text, const char *opt, long lo, long hi, long *out);
// Parses a whole decimal number in [lo, hi]; the message names the option.
Status args_float(const char *text, const char *opt, double lo, double hi, double *out);
// The option `name` read with args_int / args_float; def when it is not given.
Status args_opt_int(const ArgOpt *opts, int n_opts, const char *name, long lo, long hi, long def, long *out);
Status args_opt_float(const ArgOpt *opts, int n_opts, const char *name, double lo, double hi, double def, double *out);

#endif
