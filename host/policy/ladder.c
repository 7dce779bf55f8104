// The Off-The-Shelf model ladder file.
#include "ladder.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/mapped_file.h"

static Status rung_parse(const char *file, int line, char *text, const char *dir, LadderRung *r) {
    char *end;
    r->line = line;
    r->threshold = strtod(text, &end);
    if (end == text || !isspace((unsigned char)*end) || !(r->threshold >= 0 && r->threshold <= 1))
        return status_fail(ST_USAGE, "%s:%d: expected \"<threshold in [0, 1]> <model>\", got '%.60s'", file, line, text);
    while (isspace((unsigned char)*end)) end++;
    char *model = end;
    while (*end && !isspace((unsigned char)*end)) end++;
    char *rest = end;
    while (isspace((unsigned char)*rest)) rest++;
    if (*rest) return status_fail(ST_USAGE, "%s:%d: one threshold and one model per line, got '%.60s'", file, line, text);
    *end = '\0';
    r->full = !strcmp(model, "full");
    if (r->full) return ST_OK;
    int len = model[0] == '/' || !dir[0] ? snprintf(r->path, sizeof r->path, "%s", model)
                                          : snprintf(r->path, sizeof r->path, "%s/%s", dir, model);
    if (len < 0 || (size_t)len >= sizeof r->path) return status_fail(ST_USAGE, "%s:%d: the model path is too long", file, line);
    struct stat sb;
    if (stat(r->path, &sb) != 0)
        return status_fail(ST_IO, "%s:%d: the model %s does not exist", file, line, r->path);
    return ST_OK;
}

Status ladder_load(const char *path, Ladder *out) {
    memset(out, 0, sizeof *out);
    snprintf(out->file, sizeof out->file, "%s", path);
    char *text = NULL;
    size_t len = 0;
    TRY(read_text_file(path, &text, &len));
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else dir[0] = '\0';
    Status st = ST_OK;
    int line = 0;
    for (char *p = text; st == ST_OK && p < text + len;) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));
        char *e = nl ? nl : text + len;
        *e = '\0';
        line++;
        char *hash = strchr(p, '#');
        if (hash) *hash = '\0';
        char *s = p;
        while (isspace((unsigned char)*s)) s++;
        char *t = s + strlen(s);
        while (t > s && isspace((unsigned char)t[-1])) *--t = '\0';
        if (*s) {
            if (out->n == LADDER_MAX) st = status_fail(ST_USAGE, "%s:%d: more than %d rungs", path, line, LADDER_MAX);
            else st = rung_parse(path, line, s, dir, &out->rungs[out->n]);
            if (st == ST_OK && out->n > 0 && !(out->rungs[out->n].threshold < out->rungs[out->n - 1].threshold))
                st = status_fail(ST_USAGE, "%s:%d: threshold %g after %g: the thresholds must strictly descend", path,
                                 line, out->rungs[out->n].threshold, out->rungs[out->n - 1].threshold);
            if (st == ST_OK) out->n++;
        }
        p = e + 1;
    }
    free(text);
    if (st == ST_OK && out->n == 0) st = status_fail(ST_USAGE, "%s: no rungs (\"<threshold> <model>\" lines)", path);
    if (st == ST_OK && out->rungs[out->n - 1].threshold > 0.2 + 1e-9)
        st = status_fail(ST_USAGE, "%s: the last threshold is %g: SLOs down to 0.2 would have no model (end with 0 or "
                         "0.2)", path, out->rungs[out->n - 1].threshold);
    return st;
}

int ladder_pick(const Ladder *l, double s, bool artifact) {
    for (int i = 0; i < l->n; i++) {
        if (artifact && l->rungs[i].full) continue;
        if (s >= l->rungs[i].threshold - 1e-9) return i;
    }
    return -1;
}
