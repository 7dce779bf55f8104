// datadir.h: where elastilm finds the data it ships with.
//
// The repository bundles small data files that commands read at run time: the
// ElastiLM artifact's Octopus and LlamaTouch sets and its SLO traces
// (datasets/elastilm-artifact/). The folder holding them is, first match wins:
//   1. the command's --data-dir DIR (datadir_set),
//   2. $ELASTILM_DATA,
//   3. the folder compiled in as ELASTILM_DATADIR: the source tree's datasets/
//      for a plain `make`, $(PREFIX)/share/elastilm for `make install`.
// So the binary finds its data from any working directory, and a copy moved
// elsewhere can be pointed at it.
#ifndef ELASTILM_DATADIR_H
#define ELASTILM_DATADIR_H

#include <stddef.h>

#include "runtime/status.h"

// The --data-dir option's value (NULL or "" forgets it). The string is kept.
void datadir_set(const char *dir);

// The data folder now in force, and what chose it ("--data-dir",
// "$ELASTILM_DATA" or "the built-in default"), if origin is not NULL.
const char *datadir_get(const char **origin);

// The compiled-in default folder.
const char *datadir_builtin(void);

// buf = <data folder>/<rel>. The file must exist: if it does not, the error
// names the path tried, what chose the folder and how to set another one.
Status datadir_file(const char *rel, char *buf, size_t n);

#endif
