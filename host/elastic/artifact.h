// artifact.h: the elastic artifact file (HDF5; layout in docs/hdf5.md).
//
// Holds what elasticize decided for one model: its identity and shapes, the
// calibration settings, per-layer skip losses and anchors, per-unit importance,
// the permutation of every layer and the level table; `elastilm lora` adds one
// adapter per level (lora/<r>). Loading a model with its artifact applies the
// permutation once; a level is then a view (widths + adapter) on the same weights.
#ifndef ELASTILM_ARTIFACT_H
#define ELASTILM_ARTIFACT_H

#include "elastic/elastic.h"
#include "io/h5.h"
#include "models/lora.h"

#define ARTIFACT_MAX_LEVELS 32

typedef struct {
    char model[1024];       // the model path elasticize was given
    char calib[1024];       // calibration text
    int samples, seq;       // calibration batch
    uint64_t seed;
    char order[16];         // "importance" or "random"
    double base_loss;       // calibration loss of the full model
    double *skip_loss;      // [L] loss with each layer skipped (NULL when anchors were given)
    uint8_t *anchor;        // [L]
    Importance imp;         // scores (empty for a random order)
    Permutation perm;
    LevelSpec levels[ARTIFACT_MAX_LEVELS];
    int n_levels;
} Artifact;

// Writes a new artifact file (atomically; replaces an existing one, adapters included).
Status artifact_write(const char *path, const LlamaConfig *c, const Artifact *a);
// Reads it and checks it belongs to a model of config c.
Status artifact_read(const char *path, const LlamaConfig *c, Artifact *a);
void artifact_free(Artifact *a);

// "0.5" for 0.5: how levels are named inside the file.
void level_name(double level, char *buf, size_t n);

// Checks that an open artifact file is an elastilm artifact made for a model of config c.
Status artifact_check_model(H5Store *f, const LlamaConfig *c);

// The widths of an elastic level from the artifact's level table:
// levels/<level>/n_kv and levels/<level>/ffn, int32 [L] (written by elasticize).
// Level "1" (the full model) needs no table.
Status artifact_level_widths(H5Store *f, const char *level, const LlamaConfig *c, LlamaWidth *out);

// Loads the artifact and reorders the model's weights by its permutation.
Status artifact_apply(LlamaModel *m, const char *path);

// A level of a permuted model: its widths and (unless without_lora, or when
// the artifact has none for it) its adapter, as a view for llama_session_set_view;
// the adapter is put on the model's device (m->dev).
typedef struct {
    LlamaWidth *widths;
    LoraSet lora;
    bool has_lora;
    LlamaView view;
} LevelView;
Status level_view_load(const char *path, const LlamaModel *m, const char *level, bool without_lora, LevelView *v);
void level_view_free(LevelView *v);

#endif
