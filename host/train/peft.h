// peft.h: LoRA sets to and from Hugging Face peft's adapter directory
// (adapter_model.safetensors + adapter_config.json).
//
// Keys: base_model.model.<module path>.lora_<A|B>.weight, the module path from
// the set's target table (LLaMA: model.layers.<l>.<self_attn|mlp>.<proj>),
// A [r, in], B [out, r] in fp32. A set trained on a prefix view exports with
// the view's shapes: it loads into the equally pruned model.
#ifndef ELASTILM_PEFT_H
#define ELASTILM_PEFT_H

#include "models/llama.h"
#include "models/lora.h"

// Writes dir/adapter_model.safetensors and dir/adapter_config.json (dir is
// created if needed; both files are written atomically).
Status peft_export(const LoraSet *s, const char *dir, const char *base_model);

// Reads a peft LoRA adapter directory into a new set for config c in view
// widths (NULL = full). The config must be a plain LoRA (no rslora, DoRA,
// biases or fan_in_fan_out); every targeted tensor must be present with the
// view's shape. Messages name the file and the key at fault.
Status peft_import(LoraSet *s, const LlamaConfig *c, const LlamaWidth *widths, const char *dir);

// The same for any target table (shapes from tt->shape(shape_ctx, ...)).
Status peft_import_table(LoraSet *s, const LoraTargetTable *tt, const void *shape_ctx, int n_layers, const char *dir);

// peft's key of one adapter matrix (which = 'A' or 'B') of a LLaMA set / of a set with table tt.
void peft_key(char *buf, size_t n, int layer, LoraTarget t, char which);
void peft_key_in(const LoraTargetTable *tt, char *buf, size_t n, int layer, int t, char which);

#endif
