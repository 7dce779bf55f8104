#include "replay.h"

#include <dirent.h>
#include <signal.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/log.h"
#include "runtime/mapped_file.h"
#include "runtime/stats.h"
#include "runtime/strbuf.h"

// One request's outcome, as its JSONL record holds it.
typedef struct {
    bool have;
    int rank, pred, answer;
    bool correct;
    double prompt_ratio, model_ratio; // model_ratio 0: not an elastic level
    char what[200];                   // the decision, in words
    int prompt_tokens, full_tokens;   // the prompt as served, and uncompressed (LLM tokens)
    double tlm_ms, prefill_ms, tpot_ms, score_ms; // measured (0 without measurement)
    double ttft_budget_ms, tpot_budget_ms;
    double queue_ms;                  // with arrivals: waiting before service (set by the merge)
} Rec;

static size_t n_replayed(const ReplayConfig *c) {
    return c->limit && c->limit < c->trace->n ? c->limit : c->trace->n;
}

static double ttft_of(const Rec *r) { return r->tlm_ms + r->prefill_ms; }

static bool met_ttft(const Rec *r) { return r->queue_ms + ttft_of(r) <= r->ttft_budget_ms; }
static bool met_tpot(const Rec *r) { return r->tpot_ms <= r->tpot_budget_ms; }

// ---- records as JSON ---------------------------------------------------------------

static char *rec_dump(const ReplayConfig *c, size_t i, const Rec *r, bool final) {
    const TraceRequest *q = &c->trace->req[i];
    json_t *o = json_object();
    json_object_set_new(o, "i", json_integer((json_int_t)i));
    json_object_set_new(o, "idx", json_integer(q->idx));
    json_object_set_new(o, "dataset", json_string(dataset_name(q->ds)));
    json_object_set_new(o, "prefill_slo", json_real(q->slo.prefill));
    json_object_set_new(o, "decode_slo", json_real(q->slo.decode));
    json_object_set_new(o, "mode", json_string(c->mode));
    json_object_set_new(o, "rank", json_integer(r->rank));
    json_object_set_new(o, "prompt_ratio", json_real(r->prompt_ratio));
    json_object_set_new(o, "model_ratio", r->model_ratio > 0 ? json_real(r->model_ratio) : json_null());
    json_object_set_new(o, "what", json_string(r->what));
    json_object_set_new(o, "pred", json_integer(r->pred));
    json_object_set_new(o, "answer", json_integer(r->answer));
    json_object_set_new(o, "correct", json_boolean(r->correct));
    if (c->measure) {
        json_object_set_new(o, "prompt_tokens", json_integer(r->prompt_tokens));
        json_object_set_new(o, "full_tokens", json_integer(r->full_tokens));
        json_object_set_new(o, "tlm_ms", json_real(r->tlm_ms));
        json_object_set_new(o, "prefill_ms", json_real(r->prefill_ms));
        json_object_set_new(o, "ttft_ms", json_real(r->queue_ms + ttft_of(r)));
        json_object_set_new(o, "tpot_ms", json_real(r->tpot_ms));
        json_object_set_new(o, "score_ms", json_real(r->score_ms));
        json_object_set_new(o, "ttft_budget_ms", json_real(r->ttft_budget_ms));
        json_object_set_new(o, "tpot_budget_ms", json_real(r->tpot_budget_ms));
        if (final && c->arrivals) {
            json_object_set_new(o, "arrival_s", json_real(q->arrival));
            json_object_set_new(o, "queue_ms", json_real(r->queue_ms));
        }
        if (final) json_object_set_new(o, "met", json_boolean(met_ttft(r) && met_tpot(r)));
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(o);
    return s;
}

static double num(json_t *o, const char *k) { return json_number_value(json_object_get(o, k)); }

// Reads one record; a record of another trace, mode or measurement is an error.
static Status rec_parse(const ReplayConfig *c, const char *line, size_t len, const char *where, size_t *pos, Rec *r) {
    json_error_t err;
    json_t *o = json_loadb(line, len, 0, &err);
    if (!json_is_object(o)) {
        json_decref(o);
        return status_fail(ST_FORMAT, "%s: not a replay record (%s)", where, err.text);
    }
    json_t *ji = json_object_get(o, "i");
    const char *mode = json_string_value(json_object_get(o, "mode"));
    const char *ds = json_string_value(json_object_get(o, "dataset"));
    Status st = ST_OK;
    if (!json_is_integer(ji) || json_integer_value(ji) < 0 || (size_t)json_integer_value(ji) >= c->trace->n || !ds ||
        !mode || !json_is_boolean(json_object_get(o, "correct")))
        st = status_fail(ST_FORMAT, "%s: a record needs i (a position in %s), mode, dataset and correct", where,
                         c->trace_path);
    size_t i = st == ST_OK ? (size_t)json_integer_value(ji) : 0;
    const TraceRequest *q = &c->trace->req[i];
    if (st == ST_OK && strcmp(mode, c->mode) != 0)
        st = status_fail(ST_FORMAT, "%s: a record of mode %s, replaying %s: use another --out", where, mode, c->mode);
    if (st == ST_OK && (strcmp(ds, dataset_name(q->ds)) != 0 || num(o, "idx") != (double)q->idx))
        st = status_fail(ST_FORMAT, "%s: request %zu is %s idx %.0f there but %s idx %ld in %s: records of another trace",
                         where, i, ds, num(o, "idx"), dataset_name(q->ds), q->idx, c->trace_path);
    if (st == ST_OK && c->measure && !json_is_number(json_object_get(o, "prefill_ms")))
        st = status_fail(ST_FORMAT, "%s: a record without latency; this replay measures it (or pass --latency none)",
                         where);
    if (st == ST_OK) {
        memset(r, 0, sizeof *r);
        r->have = true;
        r->rank = (int)num(o, "rank");
        r->pred = (int)num(o, "pred");
        r->answer = (int)num(o, "answer");
        r->correct = json_is_true(json_object_get(o, "correct"));
        r->prompt_ratio = num(o, "prompt_ratio");
        r->model_ratio = num(o, "model_ratio");
        const char *what = json_string_value(json_object_get(o, "what"));
        snprintf(r->what, sizeof r->what, "%s", what ? what : "");
        r->prompt_tokens = (int)num(o, "prompt_tokens");
        r->full_tokens = (int)num(o, "full_tokens");
        r->tlm_ms = num(o, "tlm_ms");
        r->prefill_ms = num(o, "prefill_ms");
        r->tpot_ms = num(o, "tpot_ms");
        r->score_ms = num(o, "score_ms");
        r->ttft_budget_ms = num(o, "ttft_budget_ms");
        r->tpot_budget_ms = num(o, "tpot_budget_ms");
        *pos = i;
    }
    json_decref(o);
    return st;
}

// Reads the complete lines of a record file into recs (first record of a position wins).
static Status read_records(const ReplayConfig *c, const char *path, Rec *recs) {
    char *text = NULL;
    size_t len = 0;
    TRY(read_text_file(path, &text, &len));
    Status st = ST_OK;
    int line = 0;
    for (size_t at = 0; st == ST_OK && at < len; line++) {
        char *nl = memchr(text + at, '\n', len - at);
        if (!nl) break; // a torn last line: its request runs again
        char where[1200];
        snprintf(where, sizeof where, "%s:%d", path, line + 1);
        size_t pos = 0;
        Rec r;
        st = rec_parse(c, text + at, (size_t)(nl - text) - at, where, &pos, &r);
        if (st == ST_OK && !recs[pos].have) recs[pos] = r;
        at = (size_t)(nl - text) + 1;
    }
    free(text);
    return st;
}

// The partial files beside jsonl: calls fn(path) for each "<jsonl>.partial-<k>".
static Status each_partial(const char *jsonl, Status (*fn)(const char *path, void *ctx), void *ctx) {
    char dir[1200], prefix[600];
    const char *slash = strrchr(jsonl, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - jsonl) : 1, slash ? jsonl : ".");
    snprintf(prefix, sizeof prefix, "%s.partial-", slash ? slash + 1 : jsonl);
    DIR *d = opendir(dir);
    if (!d) return ST_OK;
    Status st = ST_OK;
    struct dirent *e;
    while (st == ST_OK && (e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
            char path[2600];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            st = fn(path, ctx);
        }
    closedir(d);
    return st;
}

typedef struct {
    const ReplayConfig *c;
    Rec *recs;
} ReadCtx;

static Status read_one(const char *path, void *vctx) {
    ReadCtx *x = vctx;
    return read_records(x->c, path, x->recs);
}

static Status remove_one(const char *path, void *ctx) {
    (void)ctx;
    return unlink(path) == 0 ? ST_OK : status_fail(ST_IO, "%s: cannot remove", path);
}

// Everything recorded so far: <jsonl> and every partial file.
static Status read_all(const ReplayConfig *c, Rec *recs) {
    struct stat sb;
    if (stat(c->jsonl, &sb) == 0) TRY(read_records(c, c->jsonl, recs));
    ReadCtx x = {c, recs};
    return each_partial(c->jsonl, read_one, &x);
}

// Cuts a torn last line off this rank's partial file, so appends start clean.
static Status drop_torn_tail(const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0 || sb.st_size == 0) return ST_OK;
    char *text = NULL;
    size_t len = 0;
    TRY(read_text_file(path, &text, &len));
    size_t good = len;
    while (good > 0 && text[good - 1] != '\n') good--;
    free(text);
    if (good == len) return ST_OK;
    return truncate(path, (off_t)good) == 0 ? ST_OK : status_fail(ST_IO, "%s: cannot truncate", path);
}

// ---- one request -------------------------------------------------------------------

static Status serve_one(Server *sv, const EvalPrompt *prompt, const ReplayConfig *c, size_t i, Rec *r) {
    const TraceRequest *q = &c->trace->req[i];
    char where[64];
    snprintf(where, sizeof where, "request %zu", i);
    McQuestion mq = {.id = where, .question = q->question, .choices = q->choices, .n_choices = q->n_choices,
                     .answer = q->answer, .where = where};
    PolicyRequest rq = {.system = prompt->system, .query = prompt->query, .question = q->question,
                        .choices = (const char *const *)q->choices, .n_choices = q->n_choices};
    memset(r, 0, sizeof *r);
    r->rank = c->dist->rank;
    Decision d;
    char *sys = NULL, *text = NULL;
    double t0 = time_now();
    TRY(server_decide(sv, &rq, &q->slo, &d, NULL));
    TRY(server_transform(&d, prompt, &mq, (uint64_t)i, &sys));
    r->tlm_ms = (time_now() - t0) * 1e3;
    r->prompt_ratio = d.prompt_ratio;
    r->model_ratio = d.model_ratio;
    snprintf(r->what, sizeof r->what, "%s", d.what);
    EvalPrompt qp = *prompt;
    if (sys) qp.system = sys;
    Status st = ST_OK;
    if (c->measure) {
        st = eval_render(sv->scorer.tok, &qp, q->ds, &mq, &text);
        if (st == ST_OK) st = scorer_prefill(&sv->scorer, text, &r->prompt_tokens, &r->prefill_ms, &r->tpot_ms);
        // the budget: fractions of the full model's latency on the whole (uncompressed) prompt;
        // a prompt served as it is by the served model's tokenizer was just counted
        char *full = NULL;
        bool counted = !sys && sv->scorer.tok == sv->tok;
        if (counted) r->full_tokens = r->prompt_tokens;
        if (st == ST_OK && !counted) st = eval_render(sv->tok, prompt, q->ds, &mq, &full);
        if (st == ST_OK && !counted) {
            TokenList l;
            st = tokenizer_encode(sv->tok, full, strlen(full), false, &l);
            if (st == ST_OK) r->full_tokens = (int)l.n, token_list_free(&l);
        }
        free(full);
        if (c->profile) {
            r->ttft_budget_ms = q->slo.prefill * profile_ttft_ms(c->profile, r->full_tokens);
            r->tpot_budget_ms = q->slo.decode * c->profile->tpot_ms;
        } else {
            r->ttft_budget_ms = c->ttft_budget_ms;
            r->tpot_budget_ms = c->tpot_budget_ms;
        }
    }
    EvalResult er = {0};
    double t1 = time_now();
    if (st == ST_OK) st = eval_question(&sv->scorer, &qp, q->ds, &mq, c->metric, &er);
    r->score_ms = (time_now() - t1) * 1e3;
    if (st == ST_OK) {
        r->pred = er.pred;
        r->answer = q->answer;
        r->correct = er.correct;
    }
    free(er.scores);
    free(text);
    free(sys);
    return st;
}

// ---- the summary -------------------------------------------------------------------

static Status summarise(const ReplayConfig *c, Rec *recs, size_t n, ReplaySummary *s) {
    if (c->arrivals && c->measure) { // one device, first come first served
        double free_at = 0;
        for (size_t i = 0; i < n; i++) {
            double arr = c->trace->req[i].arrival, start = arr > free_at ? arr : free_at;
            recs[i].queue_ms = (start - arr) * 1e3;
            free_at = start + ttft_of(&recs[i]) / 1e3;
        }
    }
    double *ttft = malloc((n ? n : 1) * sizeof *ttft);
    if (!ttft) return status_fail(ST_OOM, "out of memory");
    double sum_p = 0, sum_r = 0, sum_tpot = 0, sum_ttft = 0;
    size_t n_levels = 0;
    s->requests = n;
    for (size_t i = 0; i < n; i++) {
        const Rec *r = &recs[i];
        s->right += r->correct;
        sum_p += r->prompt_ratio;
        if (r->model_ratio > 0) sum_r += r->model_ratio, n_levels++;
        if (!c->measure) continue;
        bool a = met_ttft(r), b = met_tpot(r);
        s->met_ttft += a, s->met_tpot += b, s->met += a && b;
        ttft[i] = r->queue_ms + ttft_of(r);
        sum_ttft += ttft[i], sum_tpot += r->tpot_ms;
        s->tlm_ms += r->tlm_ms, s->prefill_ms += r->prefill_ms + r->tpot_ms, s->score_ms += r->score_ms;
    }
    if (n) {
        s->mean_prompt_ratio = sum_p / (double)n;
        s->mean_model_ratio = n_levels ? sum_r / (double)n_levels : 0;
        s->ttft_mean_ms = sum_ttft / (double)n;
        s->tpot_mean_ms = sum_tpot / (double)n;
        qsort(ttft, n, sizeof *ttft, stats_cmp_double);
        s->ttft_p50_ms = stats_quantile_sorted(ttft, n, 0.5);
        s->ttft_p99_ms = stats_quantile_sorted(ttft, n, 0.99);
    }
    free(ttft);
    return ST_OK;
}

// Rank 0: every position recorded, written to <jsonl> in order, the partial files removed.
static Status merge(const ReplayConfig *c, Rec *recs, size_t n, ReplaySummary *s) {
    for (size_t i = 0; i < n; i++) recs[i].have = false;
    TRY(read_all(c, recs));
    for (size_t i = 0; i < n; i++)
        if (!recs[i].have) return status_fail(ST_IO, "%s: request %zu has no record after the replay", c->jsonl, i);
    TRY(summarise(c, recs, n, s));
    StrBuf out = {0};
    Status st = ST_OK;
    for (size_t i = 0; i < n && st == ST_OK; i++) {
        char *line = rec_dump(c, i, &recs[i], true);
        if (!line || !strbuf_puts(&out, line) || !strbuf_puts(&out, "\n")) st = status_fail(ST_OOM, "out of memory");
        free(line);
    }
    size_t len = out.len;
    char *text = strbuf_take(&out);
    if (st == ST_OK && !text) st = status_fail(ST_OOM, "out of memory");
    if (st == ST_OK) st = write_file_atomic(c->jsonl, text, len);
    free(text);
    if (st == ST_OK) st = each_partial(c->jsonl, remove_one, NULL);
    return st;
}

Status replay_run(Server *sv, const EvalPrompt prompts[DS_COUNT], const ReplayConfig *c, ReplaySummary *out) {
    memset(out, 0, sizeof *out);
    const Dist *dist = c->dist;
    size_t n = n_replayed(c);
    if ((size_t)dist->world > n)
        return status_fail(ST_USAGE, "%s: %d ranks for %zu requests: run at most %zu ranks", c->trace_path, dist->world,
                           n, n);
    if (c->arrivals && !c->trace->has_arrivals)
        return status_fail(ST_USAGE, "%s: --arrivals, but the trace has no arrival times (trace gen --rate R)",
                           c->trace_path);
    if (c->arrivals && dist->world > 1)
        return status_fail(ST_USAGE, "--arrivals queues requests on one device: run one rank");
    Rec *recs = calloc(c->trace->n, sizeof *recs);
    if (!recs) return status_fail(ST_OOM, "out of memory");
    double t0 = time_now();
    Status st = read_all(c, recs);
    char part[1200];
    snprintf(part, sizeof part, "%s.partial-%d", c->jsonl, dist->rank);
    if (st == ST_OK) st = drop_torn_tail(part);
    // every rank has read the same records before anyone appends
    double fail = st != ST_OK;
    Status dst = dist_allreduce_sum_f64(dist, &fail, 1);
    if (dst != ST_OK || fail > 0) {
        free(recs);
        return st != ST_OK ? st : dst != ST_OK ? dst : status_fail(ST_IO, "another rank failed (its message above)");
    }
    size_t todo = 0, mine = 0, recorded = 0;
    for (size_t i = 0; i < n; i++) {
        if (recs[i].have) {
            recorded++;
            continue;
        }
        if ((int)(todo++ % (size_t)dist->world) == dist->rank) mine++;
    }
    if (recorded && dist->rank == 0) log_info("resuming: %zu of %zu requests already recorded for %s", recorded, n, c->mode);
    FILE *fp = mine ? fopen(part, "a") : NULL;
    if (mine && !fp) st = status_fail(ST_IO, "%s: cannot create", part);
    Progress bar;
    char label[96];
    snprintf(label, sizeof label, "e2e %s", c->mode);
    progress_begin(&bar, label, (long)mine);
    // this rank's positions, in trace order; without latency grouped by dataset
    // (stable), so the scorer's cached system prompt serves a dataset's requests
    // one after another, as eval's does
    size_t *order = mine ? malloc(mine * sizeof *order) : NULL;
    if (mine && !order && st == ST_OK) st = status_fail(ST_OOM, "out of memory");
    size_t m = 0, k = 0;
    for (int pass = 0; st == ST_OK && pass < (c->measure ? 1 : DS_COUNT); pass++) {
        k = 0;
        for (size_t i = 0; i < n; i++) {
            if (recs[i].have || (int)(k++ % (size_t)dist->world) != dist->rank) continue;
            if (c->measure || (int)c->trace->req[i].ds == pass) order[m++] = i;
        }
    }
    size_t right = 0, done = 0;
    for (size_t j = 0; st == ST_OK && j < m; j++) {
        size_t i = order[j];
        Rec r;
        st = serve_one(sv, &prompts[c->trace->req[i].ds], c, i, &r);
        if (st != ST_OK) {
            st = status_wrap(st, "%s: request %zu (%s idx %ld)", c->trace_path, i, dataset_name(c->trace->req[i].ds),
                             c->trace->req[i].idx);
            break;
        }
        char *line = rec_dump(c, i, &r, false);
        if (!line || fprintf(fp, "%s\n", line) < 0 || fflush(fp) != 0) st = status_fail(ST_IO, "%s: write failed", part);
        free(line);
        right += r.correct, done++;
        if (c->kill_after > 0 && (long)done == c->kill_after) raise(SIGKILL);
        progress_note(&bar, "acc %.3f", (double)right / (double)done);
        progress_step(&bar, 1);
    }
    progress_end(&bar);
    free(order);
    if (fp && fclose(fp) != 0 && st == ST_OK) st = status_fail(ST_IO, "%s: write failed", part);
    fail = st != ST_OK;
    double count = (double)done;
    dst = dist_allreduce_sum_f64(dist, &fail, 1);
    if (dst == ST_OK) dst = dist_allreduce_sum_f64(dist, &count, 1);
    if (st == ST_OK && dst != ST_OK) st = dst;
    if (st == ST_OK && fail > 0) st = status_fail(ST_IO, "another rank failed (its message above); rerun to resume");
    if (st == ST_OK && dist->rank == 0) st = merge(c, recs, n, out);
    out->run_here = (size_t)count;
    out->wall_s = time_now() - t0;
    free(recs);
    return st;
}
