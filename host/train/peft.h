// peft.h: LoRA sets to and from Hugging Face peft's adapter directory
// (adapter_model.safetensors + adapter_config.json).
//
// Keys: base_model.model.model.layers.<l>.<self_attn|mlp>.<proj>.lora_<A|B>.weight,
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

// peft's key of one adapter matrix (which = 'A' or 'B').
void peft_key(char *buf, size_t n, int layer, LoraTarget t, char which);

#endif
