// tokenizer_id_to_token: the vocabulary string of an id.
#include "tokenizer_internal.h"

const char *tokenizer_id_to_token(const Tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->model.vocab_size || !t->model.id_to_token) return NULL;
    return t->model.id_to_token[id];
}
