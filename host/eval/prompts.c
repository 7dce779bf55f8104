// prompts.c: the artifact's SYS_PROMPT / QUERY pairs (ELASTICLLM/<DS>.py).
//
// Everything between quotes below is data copied from the artifact's
// ELASTICLLM/{ARC_E,OBQA,PIQA,SCIQ,Octopus,LlamaTouch}.py, the path taken when
// the mode is neither "Ours" nor "Lingua2+Contextual" (TEMPLATE = SYS_PROMPT +
// QUERY). Typos ("sloving"), the missing "\n" between SYS_PROMPT and QUERY of
// the four HF datasets ("...how they formed.Question: ..."), the missing space
// before "Answer:" in Octopus/LlamaTouch, and the separator-less app list are
// all part of the data and must stay.
//
// str.format. The artifact renders a question as
//     prompt = (SYS_PROMPT + QUERY).format(question=q)
// so the system text is itself a format string: "{{" and "}}" in it would
// become "{" and "}", "{question}" in it would be substituted too, and any
// other brace would raise in Python. None of the six prompts built from the
// shipped files contains a brace (functions_simple.txt, the 6 Octopus dev rows
// and the 5 LlamaTouch dev rows have none; one Octopus *val* question has
// braces, but a question is a substituted value, which format never re-reads).
// EvalPrompt.system keeps the raw SYS_PROMPT (what the artifact's decision head
// tokenizes in "Ours" mode); eval_prompt_render applies the format rules.
// eval_prompt_build rejects a template that Python's format would reject.
//
// The Octopus guard (Octopus.py:2216-2221) is NOT applied here, it needs the
// LLM's tokenizer. What the artifact does, per question, after rendering:
//
//     prompt = TEMPLATE.format(question=val_df.iloc[i, 0])
//     while len(tokenizer.encode(prompt)) + 1 > 1900:   # "bos token"
//         prompt_split = prompt.split("\n\n")
//         prompt_split.pop(1)
//         prompt = '\n\n'.join(prompt_split)
//
//  * It acts on the WHOLE rendered prompt (system + "\nQuestion: <q>Answer:"),
//    recomputed for every question, before the choices are appended; the
//    candidates prompt+choice are not checked. It runs in every mode (after the
//    Ours / Lingua2 / full branches), so on the compressed text too.
//  * The count is tokenizer.encode(prompt) with the default
//    add_special_tokens=True: it includes the BOS that LLaMA-1/2, Vicuna,
//    Orca-mini and Llama-3 tokenizers prepend, and then adds 1 more. For those
//    models the test is n_plain + 2 > 1900; for a tokenizer that adds no BOS
//    (SmolLM2's GGUF: add_bos_token = false) it is n_plain + 1 > 1900.
//  * Dropping element 1 of split("\n\n") removes everything between the first
//    and the second "\n\n" of the prompt: block 0 (intro + "\n" + the first
//    function block) is kept, function blocks 2, 3, ... go one per iteration.
//    The last block carries the examples and the question; once it is the only
//    one after block 0, the next pop removes it (examples, question and all);
//    with a single element left, pop(1) raises IndexError (the script dies).
//    A "\n\n" inside the question would take part in the split as well.
//  * With the shipped files the full prompt is far below 1900 tokens for all
//    the artifact's tokenizers, so the loop never runs on the full path.
#include "prompts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/csv.h"
#include "runtime/strbuf.h"

const char *const LLAMATOUCH_APPS[] = {
    "Settings",
    "Contacts",
    "Google Photos",
    "Google Play Store",
    "Files",
    "Reddit",
    "Google Maps",
    "Clock",
    "Calender",
    "Youtube",
    "Google Chrome",
    "Gmail",
    "Google Play Store, Microsoft Excel",
    "Google Play Store, Firefox",
    "Google Play Store, Nova Launcher",
    "Google Play Store, HBO Max",
    "Google Play Store, Booking",
    "Google Play Store, NewsBreak",
    "Google Play Store, Expedia",
    "Google Play Store, Duolingo",
    "Google Play Store, Facebook",
    "Google Play Store, VLC",
    "Google Play Store, eBay",
    "Google Play Store, McDonald's",
    "Google Play Store, Messages",
    "chrome",
    "Calculator",
    "Coursera",
    "English Crossword Puzzle",
    "Spotify",
    "Google Play Books",
    "X",
    "Google Podcast",
    "Google News",
    "Duolingo",
    "Google Calendar",
    "Google Keep",
    "Money Manager",
    "BBC",
    "Easy Voice Recorder",
    "Messages",
    "YouTube",
    "Camera",
    "Amazon",
    "instagram",
    "Expedia",
    "Yelp",
    "Zoom",
    "CNN",
    "Google Keep Notes",
    "Walmart",
    "Facebook",
    "DoorDash",
    "CBS Sports",
    "Amazon Shopping",
    "NewsBreak",
    "Uber",
    "Burger King",
    "Discord",
    "Amazon Prime Video",
    "Google Drive",
    "Prime TV",
    "Quora",
    "Crunchyroll",
    "evernote",
    "ESPN",
    "pinterest",
    "trello",
    "Instagram",
    "Play Books",
    "webtoon",
    "google Podcasts",
    "google maps",
    "YT Music",
    "snapchat",
    "capcut",
    "Google Tasks",
};
const int LLAMATOUCH_N_APPS = (int)(sizeof LLAMATOUCH_APPS / sizeof LLAMATOUCH_APPS[0]);

#define INTRO "You are a smart assistant that helps human sloving problems. You help them by answering questions."

// ARC_E.py:2147-2153
static const char SYS_ARC_E[] =
    INTRO "\n"
    "Examples: \nQuestion: Which factor will most likely cause a person to develop a fever? Answer: a bacterial "
    "population in the bloodstream."
    "\nQuestion: Lichens are symbiotic organisms made of green algae and fungi. What do the green algae supply to the "
    "fungi in this symbiotic relationship? Answer: food."
    "\nQuestion: When a switch is used in an electrical circuit, the switch can Answer: stop and start the flow of "
    "current."
    "\nQuestion: Which of the following is an example of an assistive device? Answer: contact lens."
    "\nQuestion: Rocks are classified as igneous, metamorphic, or sedimentary according to Answer: how they formed.";

// OBQA.py:2074-2079
static const char SYS_OBQA[] =
    INTRO "\n"
    "Examples: \nQuestion: The sun is responsible for Answer: plants sprouting, blooming and wilting."
    "\nQuestion: When standing miles away from Mount Rushmore Answer: the mountains seem smaller than in photographs."
    "\nQuestion: When food is reduced in the stomach Answer: nutrients are being deconstructed."
    "\nQuestion: Stars are Answer: great balls of gas burning billions of miles away."
    "\nQuestion: You can make a telescope with a Answer: mailing tube.";

// PIQA.py:2148-2154
static const char SYS_PIQA[] =
    INTRO "\n"
    "Examples: \nQuestion: How to make Strawberry Kiwi Sauce at home. Answer: Boil 1 cup Kiwi (chopped), 1 cup "
    "chopped strawberries with 3/4 cup water and 1 cup Olive pits for 30 min., stirring to keep from scorching over "
    "med. heat on the stove top."
    "\nQuestion: Make organic air freshener. Answer: Mix baking soda and essential oils in a jar, cover with cloth "
    "and rubber band."
    "\nQuestion: What tools do you need to make a suncatcher? Answer: You need tape, a CD, a printed design, and tape."
    "\nQuestion: Baby proof a shopping cart. Answer: Wrap pool noodle around shopping cart bar."
    "\nQuestion: How do you eat boiled egg? Answer: Just eat the egg itself.";

// SCIQ.py:2147-2153 (the third example is PIQA's)
static const char SYS_SCIQ[] =
    INTRO "\n"
    "Examples: \nQuestion: What type of organism is commonly used in preparation of foods such as cheese and yogurt? "
    "Answer: mesophilic organisms."
    "\nQuestion: What phenomenon makes global winds blow northeast to southwest or the reverse in the northern "
    "hemisphere and northwest to southeast or the reverse in the southern hemisphere? Answer: coriolis effect."
    "\nQuestion: What tools do you need to make a suncatcher? Answer: You need tape, a CD, a printed design, and tape."
    "\nQuestion: Changes from a less-ordered state to a more-ordered state (such as a liquid to a solid) are always "
    "what? Answer: exothermic."
    "\nQuestion: What is the least dangerous radioactive decay? Answer: alpha decay.";

static const char QUERY_HF[] = "Question: {question} Answer:";    // the four HF datasets
static const char QUERY_APP[] = "\nQuestion: {question}Answer:";  // Octopus, LlamaTouch

// Both scripts take dev rows 0..5 (`if i==5: break` after appending).
#define N_DEV_EXAMPLES 6

// ---------------------------------------------------------------------------
// Files.

static Status read_all(const char *path, char **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return status_fail(ST_IO, "%s: cannot open: %s", path, strerror(errno));
    StrBuf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (!strbuf_add(&b, chunk, n)) {
            fclose(f);
            free(b.s);
            return status_fail(ST_OOM, "%s: out of memory", path);
        }
    }
    bool err = ferror(f);
    fclose(f);
    if (err) {
        free(b.s);
        return status_fail(ST_IO, "%s: read error", path);
    }
    if (!b.s && !strbuf_add(&b, "", 0)) return status_fail(ST_OOM, "%s: out of memory", path);
    if (memchr(b.s, '\0', b.len)) {
        free(b.s);
        return status_fail(ST_FORMAT, "%s: contains a NUL byte", path);
    }
    *out = b.s;
    *len = b.len;
    return ST_OK;
}

// Python's open(path, 'r').read(): universal newlines ("\r\n" and "\r" become
// "\n"); a UTF-8 BOM is kept (the default codec is utf-8, not utf-8-sig).
static void universal_newlines(char *s) {
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r == '\r') {
            *w++ = '\n';
            if (r[1] == '\n') r++;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

// ---------------------------------------------------------------------------
// The artifact's dev files, as pandas.read_csv(path, header=None[, sep='\t'])
// reads them: records and fields from io/csv.h (its malformed records are
// errors here), and every record must have the first record's field count
// (pandas raises on a longer one and would put NaN into a shorter one).

typedef struct {
    char ***rows;  // [n_rows][n_cols] malloc'd strings
    int n_rows, n_cols;
} Table;

static void table_free(Table *t) {
    for (int r = 0; r < t->n_rows; r++) {
        for (int c = 0; c < t->n_cols; c++) free(t->rows[r][c]);
        free(t->rows[r]);
    }
    free(t->rows);
    memset(t, 0, sizeof *t);
}

// pandas' default na_values: such a field would become NaN (float), and the
// artifact would then print "nan" into the prompt. Refuse rather than guess.
static bool pandas_na(const char *s) {
    static const char *const na[] = {"",     "#N/A", "#N/A N/A", "#NA",     "-1.#IND", "-1.#QNAN", "-NaN",
                                     "-nan", "1.#IND", "1.#QNAN", "<NA>",   "N/A",     "NA",       "NULL",
                                     "NaN",  "None", "n/a",     "nan",     "null"};
    for (size_t i = 0; i < sizeof na / sizeof na[0]; i++)
        if (strcmp(s, na[i]) == 0) return true;
    return false;
}

// One record's fields appended to t as a new row of malloc'd strings.
static Status table_add_row(Table *t, const CsvReader *c, const char *path) {
    char ***rows = realloc(t->rows, (size_t)(t->n_rows + 1) * sizeof *rows);
    if (!rows) return status_fail(ST_OOM, "%s: out of memory", path);
    t->rows = rows;
    char **row = calloc((size_t)c->n_fields, sizeof *row);
    if (!row) return status_fail(ST_OOM, "%s: out of memory", path);
    for (int i = 0; i < c->n_fields; i++) {
        row[i] = strdup(csv_field(c, i));
        if (!row[i]) {
            for (int k = 0; k < i; k++) free(row[k]);
            free(row);
            return status_fail(ST_OOM, "%s: out of memory", path);
        }
    }
    t->rows[t->n_rows++] = row;
    return ST_OK;
}

static Status read_table(const char *path, char sep, Table *t) {
    memset(t, 0, sizeof *t);
    char *text;
    size_t len;
    TRY(read_all(path, &text, &len)); // no NUL bytes, so fields are whole strings
    CsvReader c;
    Status st = csv_init(&c, text, len, sep, path);
    bool more;
    while (st == ST_OK && (st = csv_next(&c, &more)) == ST_OK && more) {
        if (c.problem) st = csv_record_fail(&c, "%s", c.problem);
        else if (t->n_rows > 0 && c.n_fields != t->n_cols)
            st = csv_record_fail(&c, "%d fields, expected %d like the first record", c.n_fields, t->n_cols);
        else {
            if (t->n_rows == 0) t->n_cols = c.n_fields;
            st = table_add_row(t, &c, path);
        }
    }
    csv_free(&c);
    free(text);
    if (st != ST_OK) table_free(t);
    return st;
}

// ---------------------------------------------------------------------------
// Python str.format with the single keyword argument `question`. Returns the
// formatted text (malloc'd), or NULL with the status set: a lone brace or a
// field other than {question} is what Python would raise on.

static char *py_format(const char *tmpl, const char *question, Status *st) {
    StrBuf b = {0};
    bool ok = strbuf_add(&b, "", 0);
    const char *p = tmpl;
    static const char field[] = "{question}";
    while (ok && *p) {
        const char *q = strpbrk(p, "{}");
        if (!q) {
            ok = strbuf_puts(&b, p);
            break;
        }
        ok = strbuf_add(&b, p, (size_t)(q - p));
        if (!ok) break;
        if (q[0] == q[1]) {  // "{{" or "}}"
            ok = strbuf_add(&b, q, 1);
            p = q + 2;
        } else if (strncmp(q, field, sizeof field - 1) == 0) {
            ok = strbuf_puts(&b, question);
            p = q + sizeof field - 1;
        } else {
            free(b.s);
            *st = status_fail(ST_FORMAT, "format string: %s at byte %zu (Python's str.format would raise)",
                              q[0] == '}' ? "single '}'" : "a replacement field other than {question}",
                              (size_t)(q - tmpl));
            return NULL;
        }
    }
    if (!ok) {
        free(b.s);
        *st = status_fail(ST_OOM, "out of memory");
        return NULL;
    }
    *st = ST_OK;
    return b.s;
}

// ---------------------------------------------------------------------------

static Status dup_into(char **dst, const char *s) {
    *dst = strdup(s);
    return *dst ? ST_OK : status_fail(ST_OOM, "out of memory");
}

// Octopus.py:2066-2096
static Status build_octopus(StrBuf *sys, const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/Octopus_refined/functions_simple.txt", dir);
    char *doc;
    size_t len;
    TRY(read_all(path, &doc, &len));
    universal_newlines(doc);
    bool ok = strbuf_puts(sys, INTRO) && strbuf_puts(sys, "\n") && strbuf_puts(sys, doc) && strbuf_puts(sys, "\nExamples:");
    free(doc);
    if (!ok) return status_fail(ST_OOM, "out of memory");

    snprintf(path, sizeof path, "%s/Octopus_refined/dev/android_benchmark.csv", dir);
    Table t;
    TRY(read_table(path, ',', &t));  // pandas reads (and checks) every row
    Status st = ST_OK;
    if (t.n_rows == 0) st = status_fail(ST_FORMAT, "%s: no records", path);
    else if (t.n_cols < 3) st = status_fail(ST_FORMAT, "%s: %d columns, need a question, choices and a label", path, t.n_cols);
    for (int r = 0; st == ST_OK && r < t.n_rows && r < N_DEV_EXAMPLES; r++) {
        const char *q = t.rows[r][0], *label = t.rows[r][t.n_cols - 1];
        // answer = dev_df.iloc[i, ord(choice) - ord('A') + 1]
        int col = (label[0] >= 'A' && label[1] == '\0') ? label[0] - 'A' + 1 : -1;
        if (col < 1 || col > t.n_cols - 2) {
            st = status_fail(ST_FORMAT, "%s: record %d: label \"%s\" is not a letter naming one of the %d choices", path,
                             r + 1, label, t.n_cols - 2);
            break;
        }
        const char *ans = t.rows[r][col];
        if (pandas_na(q) || pandas_na(ans)) {
            st = status_fail(ST_FORMAT, "%s: record %d: a field pandas would read as NaN", path, r + 1);
            break;
        }
        if (!(strbuf_puts(sys, "\nQuestion: ") && strbuf_puts(sys, q) && strbuf_puts(sys, " Answer: ") && strbuf_puts(sys, ans)))
            st = status_fail(ST_OOM, "out of memory");
    }
    table_free(&t);
    return st;
}

// LlamaTouch.py:2156-2174
static Status build_llamatouch(StrBuf *sys, const char *dir) {
    bool ok = strbuf_puts(sys, INTRO) &&
              strbuf_puts(sys, "The following is an instruction to manipulate UI states. You should select apps to operate.") &&
              strbuf_puts(sys, "\nSelectable apps:");
    for (int i = 0; ok && i < LLAMATOUCH_N_APPS; i++) ok = strbuf_puts(sys, LLAMATOUCH_APPS[i]);
    ok = ok && strbuf_puts(sys, "\nExamples:");
    if (!ok) return status_fail(ST_OOM, "out of memory");

    char path[4096];
    snprintf(path, sizeof path, "%s/LlamaTouch/dev/llamatouch_task_metadata.tsv", dir);
    Table t;
    TRY(read_table(path, '\t', &t));
    Status st = ST_OK;
    if (t.n_rows == 0) st = status_fail(ST_FORMAT, "%s: no records", path);
    else if (t.n_cols < 2) st = status_fail(ST_FORMAT, "%s: %d column(s), need description and app", path, t.n_cols);
    for (int r = 0; st == ST_OK && r < t.n_rows && r < N_DEV_EXAMPLES; r++) {
        const char *q = t.rows[r][0], *app = t.rows[r][t.n_cols - 1];  // iloc[i, 0], str(iloc[i, -1])
        if (pandas_na(q) || pandas_na(app)) {
            st = status_fail(ST_FORMAT, "%s: record %d: a field pandas would read as NaN", path, r + 1);
            break;
        }
        if (!(strbuf_puts(sys, "\nQuestion: ") && strbuf_puts(sys, q) && strbuf_puts(sys, " Answer: ") && strbuf_puts(sys, app)))
            st = status_fail(ST_OOM, "out of memory");
    }
    table_free(&t);
    return st;
}

Status eval_prompt_build(EvalPrompt *p, DatasetId ds, const char *artifact_dir) {
    memset(p, 0, sizeof *p);
    const char *sys = NULL, *query = QUERY_HF, *origin = NULL;
    StrBuf b = {0};
    Status st = ST_OK;
    switch (ds) {
    case DS_ARC_E: sys = SYS_ARC_E; break;
    case DS_OBQA: sys = SYS_OBQA; break;
    case DS_PIQA: sys = SYS_PIQA; break;
    case DS_SCIQ: sys = SYS_SCIQ; break;
    case DS_OCTOPUS:
    case DS_LLAMATOUCH:
        if (!artifact_dir || !*artifact_dir) return status_fail(ST_USAGE, "eval_prompt_build: no artifact data folder");
        st = ds == DS_OCTOPUS ? build_octopus(&b, artifact_dir) : build_llamatouch(&b, artifact_dir);
        if (st != ST_OK) {
            free(b.s);
            return st;
        }
        sys = b.s;
        query = QUERY_APP;
        origin = ds == DS_OCTOPUS ? "Octopus_refined/functions_simple.txt + dev/android_benchmark.csv"
                                  : "LlamaTouch/dev/llamatouch_task_metadata.tsv";
        break;
    default: return status_fail(ST_USAGE, "eval_prompt_build: unknown dataset %d", (int)ds);
    }
    st = dup_into(&p->system, sys);
    free(b.s);
    if (st == ST_OK) st = dup_into(&p->query, query);
    if (st == ST_OK) {
        // Python would raise at TEMPLATE.format(...) on the first question: do it now.
        char *probe = eval_prompt_render(p, "");
        if (!probe) st = status_wrap(ST_FORMAT, "%s/%s", artifact_dir ? artifact_dir : "", origin ? origin : "prompt");
        free(probe);
    }
    if (st != ST_OK) eval_prompt_free(p);
    return st;
}

Status eval_prompt_from_examples(EvalPrompt *p, const char *const *questions, const char *const *answers, int n) {
    memset(p, 0, sizeof *p);
    StrBuf b = {0};
    bool ok = strbuf_add(&b, INTRO "\nExamples: ", strlen(INTRO "\nExamples: "));
    for (int i = 0; ok && i < n; i++) {
        size_t la = strlen(answers[i]);
        bool dot = la && answers[i][la - 1] == '.'; // "Answer: food." as the artifact's examples end
        ok = strbuf_add(&b, "\nQuestion: ", 11) && strbuf_add(&b, questions[i], strlen(questions[i])) &&
             strbuf_add(&b, " Answer: ", 9) && strbuf_add(&b, answers[i], la) && (dot || strbuf_add(&b, ".", 1));
    }
    // the system text is a format string (eval_prompt_render), also after compression has cut it
    // anywhere: braces from the data become parentheses rather than escapes that a cut could split
    for (char *c = b.s; ok && *c; c++)
        if (*c == '{' || *c == '}') *c = *c == '{' ? '(' : ')';
    p->system = b.s;
    p->query = strdup(QUERY_HF);
    if (!ok || !p->query) {
        eval_prompt_free(p);
        return status_fail(ST_OOM, "out of memory");
    }
    return ST_OK;
}

void eval_prompt_free(EvalPrompt *p) {
    if (!p) return;
    free(p->system);
    free(p->query);
    p->system = p->query = NULL;
}

char *eval_prompt_render(const EvalPrompt *p, const char *question) {
    size_t ls = strlen(p->system), lq = strlen(p->query);
    char *tmpl = malloc(ls + lq + 1);
    if (!tmpl) {
        status_fail(ST_OOM, "out of memory");
        return NULL;
    }
    memcpy(tmpl, p->system, ls);
    memcpy(tmpl + ls, p->query, lq + 1);
    Status st;
    char *out = py_format(tmpl, question ? question : "", &st);
    free(tmpl);
    return out;
}
