// LoRA target tables: a model other than LLaMA declares its own targets
// (here a toy encoder's query/value), and sets built from its table lay out,
// parse, export to peft and go through HDF5 with its names; LLaMA's table is
// the seven projections with peft's module paths.
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "io/h5.h"
#include "io/safetensors.h"
#include "test_util.h"
#include "train/lora_store.h"
#include "train/peft.h"

static const char *const enc_names[2] = {"query", "value"};
static const char *const enc_paths[2] = {"bert.encoder.layer.%d.attention.self.query",
                                         "bert.encoder.layer.%d.attention.self.value"};

// hidden = *ctx; value is narrower in odd layers (a pruned view)
static void enc_shape(const void *ctx, int layer, int t, int *out, int *in) {
    int d = *(const int *)ctx;
    *in = d;
    *out = t == 1 && layer % 2 ? d / 2 : d;
}

static const LoraTargetTable enc_targets = {.model = "toy encoder", .n = 2, .names = enc_names,
                                            .short_names = enc_names, .module_paths = enc_paths,
                                            .peft_task_type = "TOKEN_CLS", .shape = enc_shape};

Test(lora_table, llama_table_is_the_seven_projections) {
    const LoraTargetTable *tt = &lora_llama_targets;
    cr_assert_eq(tt->n, LORA_N_TARGETS);
    for (int t = 0; t < LORA_N_TARGETS; t++) cr_expect_str_eq(tt->names[t], lora_target_names[t]);
    char key[160];
    peft_key(key, sizeof key, 3, LORA_V, 'A');
    cr_expect_str_eq(key, "base_model.model.model.layers.3.self_attn.v_proj.lora_A.weight");
    peft_key(key, sizeof key, 0, LORA_DOWN, 'B');
    cr_expect_str_eq(key, "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight");
}

Test(lora_table, another_models_targets) {
    unsigned mask;
    cr_assert_eq(lora_parse_targets_in(&enc_targets, "value", &mask), ST_OK);
    cr_expect_eq(mask, 2u);
    cr_assert_eq(lora_parse_targets_in(&enc_targets, "all", &mask), ST_OK);
    cr_expect_eq(mask, 3u);
    tu_expect_err(lora_parse_targets_in(&enc_targets, "query,q_proj", &mask), ST_USAGE, "'q_proj'",
                  "known: query,value", NULL);
    int d = 8;
    LoraConfig cfg = {.rank = 2, .alpha = 4, .targets = 3};
    LoraSet s;
    cr_assert_eq(lora_init_table(&s, &enc_targets, &d, 3, &cfg, 5), ST_OK, "%s", status_message());
    cr_expect_eq(s.n_targets, 2);
    cr_expect_eq(s.n_params, 3 * 2 * (8 + 8) + 2 * 2 * (8 + 8) + 2 * (8 + 4)); // query x3, value 8/4/8 wide
    cr_expect_eq(lora_adapter(&s, 1, 1)->out, 4);
    cr_expect_eq(lora_adapter(&s, 1, 1)->A.data, (float *)s.params.data + 2 * 32 + 32); // after layer 0, layer 1 query
    for (int64_t i = 0; i < s.n_params; i++) ((float *)s.params.data)[i] = 0.01f * (float)i;
    char dir[64], path[160];
    tu_make_temp_dir(dir, sizeof dir, "loratable");
    // peft: the table's module paths and task type
    cr_assert_eq(peft_export(&s, dir, NULL), ST_OK, "%s", status_message());
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    SafetensorsFile f;
    tu_open_safetensors(&f, path);
    const SafeTensor *b = tu_tensor(&f, "base_model.model.bert.encoder.layer.1.attention.self.value.lora_B.weight", DT_F32);
    cr_expect(b->shape[0] == 4 && b->shape[1] == 2);
    safetensors_close(&f);
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    size_t len;
    char *cfg_text = (char *)tu_read_file(path, &len);
    cr_expect(memmem(cfg_text, len, "\"TOKEN_CLS\"", 11) && memmem(cfg_text, len, "\"query\"", 7), "%.*s", (int)len,
              cfg_text);
    free(cfg_text);
    LoraSet back;
    cr_assert_eq(peft_import_table(&back, &enc_targets, &d, 3, dir), ST_OK, "%s", status_message());
    cr_expect_eq(back.n_params, s.n_params);
    cr_expect(memcmp(back.params.data, s.params.data, (size_t)s.n_params * sizeof(float)) == 0);
    lora_free(&back);
    // HDF5: the table's names
    snprintf(path, sizeof path, "%s/set.h5", dir);
    H5Store *h;
    cr_assert_eq(h5_create(&h, path), ST_OK);
    cr_assert_eq(lora_store_write(h, "lora/x", &s), ST_OK, "%s", status_message());
    cr_assert(h5_exists(h, "lora/x/2/value/A"));
    cr_assert_eq(h5_commit(h), ST_OK);
    cr_assert_eq(h5_open_read(&h, path), ST_OK);
    cr_assert_eq(lora_store_read_table(h, "lora/x", &enc_targets, &d, 3, &back), ST_OK, "%s", status_message());
    h5_close(h);
    cr_expect(memcmp(back.params.data, s.params.data, (size_t)s.n_params * sizeof(float)) == 0);
    lora_free(&back);
    lora_free(&s);
    tu_remove_dir(dir);
}
