// Reading and writing the decision head's label file (JSON lines).
#include "decision_records.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/mapped_file.h"

char *decision_record_json(const DecisionRecord *r) {
    json_t *choices = json_array(), *correct = json_array();
    for (int k = 0; k < r->n_choices; k++) json_array_append_new(choices, json_string(r->choices[k]));
    for (int i = 0; i < TLM_N_PROMPT; i++) {
        char row[TLM_N_MODEL + 1];
        for (int j = 0; j < TLM_N_MODEL; j++) row[j] = r->res.table.ok[i][j] ? '1' : '0';
        row[TLM_N_MODEL] = '\0';
        json_array_append_new(correct, json_string(row));
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:i, s:o, s:I, s:I}", "id", r->id, "task", r->task, "system",
                          r->system, "query", r->query, "question", r->question, "choices", choices, "answer", r->answer,
                          "correct", correct, "tokens_run", (json_int_t)r->res.tokens_run, "tokens_artifact",
                          (json_int_t)r->res.tokens_artifact);
    char *s = o ? json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s) return NULL;
    size_t n = strlen(s);
    char *line = realloc(s, n + 2);
    if (!line) {
        free(s);
        return NULL;
    }
    line[n] = '\n', line[n + 1] = '\0';
    return line;
}

void decision_record_free(DecisionRecord *r) {
    for (int k = 0; r->choices && k < r->n_choices; k++) free(r->choices[k]);
    free(r->choices), free(r->id), free(r->task), free(r->system), free(r->query), free(r->question);
    memset(r, 0, sizeof *r);
}

void decision_records_free(DecisionRecords *r) {
    for (size_t i = 0; i < r->n; i++) decision_record_free(&r->v[i]);
    free(r->v);
    memset(r, 0, sizeof *r);
}

static char *dup_field(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

static Status parse_record(json_t *o, const char *path, long line, DecisionRecord *r) {
    memset(r, 0, sizeof *r);
    const char *keys[] = {"id", "task", "system", "query", "question"};
    char **dst[] = {&r->id, &r->task, &r->system, &r->query, &r->question};
    for (int k = 0; k < 5; k++)
        if (!(*dst[k] = dup_field(o, keys[k])))
            return status_fail(ST_FORMAT, "%s:%ld: missing string field '%s'", path, line, keys[k]);
    json_t *choices = json_object_get(o, "choices"), *answer = json_object_get(o, "answer");
    json_t *correct = json_object_get(o, "correct"), *run = json_object_get(o, "tokens_run");
    json_t *art = json_object_get(o, "tokens_artifact");
    if (!json_is_array(choices) || json_array_size(choices) < 2 || !json_is_integer(answer) ||
        json_integer_value(answer) < 0 || (size_t)json_integer_value(answer) >= json_array_size(choices))
        return status_fail(ST_FORMAT, "%s:%ld: 'choices' must list 2 or more strings and 'answer' index one", path, line);
    r->choices = calloc(json_array_size(choices), sizeof *r->choices);
    if (!r->choices) return status_fail(ST_OOM, "out of memory");
    for (size_t k = 0; k < json_array_size(choices); k++) {
        json_t *c = json_array_get(choices, k);
        if (!json_is_string(c)) return status_fail(ST_FORMAT, "%s:%ld: choice %zu is not a string", path, line, k);
        r->choices[r->n_choices++] = strdup(json_string_value(c));
    }
    r->answer = (int)json_integer_value(answer);
    if (!json_is_array(correct) || json_array_size(correct) != TLM_N_PROMPT)
        return status_fail(ST_FORMAT, "%s:%ld: 'correct' must hold %d rows (prompt ratios 1.0 ... 0.1)", path, line,
                           TLM_N_PROMPT);
    for (int i = 0; i < TLM_N_PROMPT; i++) {
        const char *row = json_string_value(json_array_get(correct, (size_t)i));
        if (!row || strlen(row) != TLM_N_MODEL || strspn(row, "01") != TLM_N_MODEL)
            return status_fail(ST_FORMAT, "%s:%ld: correct[%d] must be %d characters 0/1 (model ratios 0.2 ... 1.0)",
                               path, line, i, TLM_N_MODEL);
        for (int j = 0; j < TLM_N_MODEL; j++) r->res.table.ok[i][j] = row[j] == '1';
    }
    if (!json_is_integer(run) || !json_is_integer(art))
        return status_fail(ST_FORMAT, "%s:%ld: 'tokens_run' and 'tokens_artifact' must be integers", path, line);
    r->res.tokens_run = json_integer_value(run);
    r->res.tokens_artifact = json_integer_value(art);
    return ST_OK;
}

Status decision_records_read(const char *path, bool torn_ok, DecisionRecords *out, size_t *good_bytes) {
    memset(out, 0, sizeof *out);
    if (good_bytes) *good_bytes = 0;
    char *text = NULL;
    size_t len = 0;
    TRY(read_file_maybe_gz(path, &text, &len));
    size_t cap = 0;
    Status st = ST_OK;
    long line = 0;
    for (size_t at = 0; st == ST_OK && at < len;) {
        char *nl = memchr(text + at, '\n', len - at);
        line++;
        if (!nl && torn_ok) break; // a killed writer's last line
        size_t end = nl ? (size_t)(nl - text) : len;
        if (end > at) {
            json_error_t err;
            json_t *o = json_loadb(text + at, end - at, 0, &err);
            if (!o) st = status_fail(ST_FORMAT, "%s:%ld: malformed JSON (%s)", path, line, err.text);
            if (st == ST_OK && out->n == cap) {
                cap = cap ? 2 * cap : 64;
                DecisionRecord *v = realloc(out->v, cap * sizeof *v);
                if (!v) st = status_fail(ST_OOM, "out of memory");
                else out->v = v;
            }
            if (st == ST_OK) {
                st = parse_record(o, path, line, &out->v[out->n]);
                if (st == ST_OK) out->n++;
                else decision_record_free(&out->v[out->n]);
            }
            json_decref(o);
        }
        at = end + 1;
        if (st == ST_OK && good_bytes) *good_bytes = at < len ? at : len;
    }
    free(text);
    if (st != ST_OK) decision_records_free(out);
    return st;
}
