// decoder_io.h: what the decoder forwards (llama_forward.c, opt.c) share
// around their layers: the checks of a forward's inputs, the new tokens' keys
// and values into each sequence's cache rows, this forward's index arrays on
// a device, and where the logits are formed. Internal to models/.
#ifndef ELASTILM_DECODER_IO_H
#define ELASTILM_DECODER_IO_H

#include <stdbool.h>
#include <stdint.h>

#include "llama.h" // LogitsMode

// Where a session keeps its cache: per layer K and V [n_seq*cap, width], the
// key mask and this forward's positions [n_seq*cap] on the host, and on a
// device the mask's mirror and the index arrays.
typedef struct {
    Tensor **k, **v;
    int32_t **mask, **pos;
    Tensor *mask_dev, *idx_dev;
} DecoderCache;

// The checks every session makes: a backend for dev, the model's weights there
// (to_device names the function that moves them), a sequence and a position.
Status decoder_session_check(Device dev, Device model_dev, int n_seq, int cap, const char *to_device);
// Allocates the cache's parts (zeroed host arrays); on failure some may exist: decoder_cache_free.
Status decoder_cache_alloc(const DecoderCache *c, int n_layers, int n_seq, int cap, int64_t width, Device dev);
void decoder_cache_free(const DecoderCache *c, int n_layers);

// T new tokens per sequence after own_past cached ones (a shared prefix not
// counted) in a session of n_seq sequences with room for cap: ids in [0, vocab),
// mask values 0/1, and logits f32 [rows, vocab] on dev or the CPU (contiguous there).
Status decoder_check_io(int vocab, int n_seq, int T, int own_past, int cap, const int32_t *ids, const int32_t *mask,
                        LogitsMode mode, const Tensor *logits, Device dev);

// The new rows [n_seq * T, width] into each sequence's cache rows [b*cap + first, ... + T).
void decoder_store_kv(Tensor *cache, const Tensor *rows, int n_seq, int T, int cap, int first);

// On a device: ids then pos ([N] each) into idx_dev, and the new tokens' mask
// entries (T per sequence, cap apart, from row first) into mask_dev; *ids_out
// and *pos_out point where the ops read them. On the CPU the host arrays.
Status decoder_upload_index(Device dev, const int32_t *ids, const int32_t *pos, const int32_t *mask, int n_seq, int T,
                            int cap, int first, Tensor *idx_dev, Tensor *mask_dev, const int32_t **ids_out,
                            const int32_t **pos_out, const int32_t **mask_out);

// Where the logits are formed: *out = logits itself, or (a host tensor for a
// device session) a buffer on dev grown in *scratch, whose content
// decoder_logits_done copies back. *copy_back says which.
Status decoder_logits_begin(Device dev, LogitsMode mode, Tensor *logits, int vocab, Tensor *scratch, Tensor *out,
                            bool *copy_back);
void decoder_logits_done(Tensor *logits, const Tensor *out, bool copy_back);

#endif
