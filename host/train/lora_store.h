// lora_store.h: LoRA sets in an HDF5 file (the elastic artifact, checkpoints).
//
// Layout under a group G (e.g. "lora/0.5" in the artifact):
//   G/<layer>/<proj>/A  f32 [r, in]     G/<layer>/<proj>/B  f32 [out, r]
//   attributes on G: rank (int), alpha, dropout (float), targets ("q,k,v,...")
// <proj> is the set's target name, q_proj, k_proj, ... for LLaMA as in Hugging Face; widths follow the view the
// set was trained on, so a level's adapter carries that level's shapes.
#ifndef ELASTILM_LORA_STORE_H
#define ELASTILM_LORA_STORE_H

#include "io/h5.h"
#include "models/lora.h"

Status lora_store_write(H5Store *f, const char *group, const LoraSet *s);
// Reads the set in G for config c in view widths (NULL = full); every matrix
// must have the view's shape.
Status lora_store_read(H5Store *f, const char *group, const LlamaConfig *c, const LlamaWidth *widths, LoraSet *s);
// The same for any target table (<proj> = tt->names; shapes from tt->shape(shape_ctx, ...)).
Status lora_store_read_table(H5Store *f, const char *group, const LoraTargetTable *tt, const void *shape_ctx,
                            int n_layers, LoraSet *s);


#endif
