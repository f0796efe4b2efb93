/* csv.c: CSV tables of strings (label files such as HAM10000's labels.csv) through libcsv, and a
 * small quoting writer.
 *
 * libcsv reports fields and row ends but not positions, so the input is fed to it one line at
 * a time: a row ends on the line being fed, and it starts as many lines earlier as there are
 * newlines inside its quoted fields. That gives every row its line number for messages. All
 * cells live in one arena; a table is immutable once parsed. */
#include "core/internal.h"
#include <csv.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>

#define CSV_MAX_FILE ((size_t)1 << 32)

struct craft_csv {
    char *what; /* "csv /path" */
    int has_header;
    int cols;
    int nrows; /* stored rows, header included */
    char *arena;
    size_t alen, acap;
    size_t *cell; /* arena offset of each cell, row-major */
    size_t ncell, ccap;
    int *line; /* first line of each stored row */
    int lcap;
};

typedef struct pctx {
    craft_csv *c;
    int cur_line; /* line being fed */
    int row_fields;
    int row_newlines;  /* '\n' inside the current row's fields */
    size_t chunk_end;  /* offset just past the line being fed */
    size_t after_row;  /* offset of the line after the last complete row */
    int last_row_line; /* line on which the last row ended */
    int err;
} pctx;

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 1;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) {
        if (nc > SIZE_MAX / 2 / elem) return 0;
        nc *= 2;
    }
    void *q = realloc(*p, nc * elem);
    if (!q) return 0;
    *p = q;
    *cap = nc;
    return 1;
}

static void on_field(void *s, size_t len, void *data) {
    pctx *x = data;
    craft_csv *c = x->c;
    if (x->err) return;
    const char *f = s ? s : "";
    if (len && memchr(f, 0, len)) {
        x->err = craft_fail(CRAFT_EFORMAT, "%s: line %d, field %d: NUL byte in field", c->what,
                            x->cur_line - x->row_newlines, x->row_fields + 1);
        return;
    }
    if (len >= SIZE_MAX - c->alen - 1 || !grow((void **)&c->arena, &c->acap, c->alen + len + 1, 1) ||
        !grow((void **)&c->cell, &c->ccap, c->ncell + 1, sizeof(size_t)) || x->row_fields == INT_MAX) {
        x->err = craft_fail(CRAFT_ENOMEM, "%s: line %d: out of memory", c->what, x->cur_line);
        return;
    }
    if (len) memcpy(c->arena + c->alen, f, len);
    c->arena[c->alen + len] = 0;
    c->cell[c->ncell++] = c->alen;
    c->alen += len + 1;
    x->row_fields++;
    for (size_t i = 0; i < len; i++) x->row_newlines += f[i] == '\n';
}

static void on_row(int term, void *data) {
    pctx *x = data;
    craft_csv *c = x->c;
    (void)term;
    if (x->err || x->row_fields == 0) return;
    int start = x->cur_line - x->row_newlines;
    if (c->nrows == 0) c->cols = x->row_fields;
    else if (x->row_fields != c->cols) {
        x->err = craft_fail(CRAFT_EFORMAT, "%s: line %d: row has %d field%s, expected %d (as %s)", c->what,
                            start, x->row_fields, x->row_fields == 1 ? "" : "s", c->cols,
                            c->has_header ? "in the header" : "in the first row");
        return;
    }
    size_t lcap = (size_t)c->lcap;
    if (c->nrows == INT_MAX || !grow((void **)&c->line, &lcap, (size_t)c->nrows + 1, sizeof(int)) ||
        lcap > INT_MAX) {
        x->err = craft_fail(CRAFT_ENOMEM, "%s: line %d: too many rows", c->what, start);
        return;
    }
    c->lcap = (int)lcap;
    c->line[c->nrows++] = start;
    x->row_fields = 0;
    x->row_newlines = 0;
    x->after_row = x->chunk_end;
    x->last_row_line = x->cur_line;
}

static int is_space_none(unsigned char ch) {
    (void)ch;
    return 0;
}

/* The line where an unterminated quoted row began: first non-blank line after the last row. */
static int open_row_line(const pctx *x, const char *buf, size_t len) {
    int line = x->c->nrows ? x->last_row_line + 1 : 1;
    for (size_t i = x->after_row; i < len; i++) {
        if (buf[i] == '\n') line++;
        else if (buf[i] != '\r') break;
    }
    return line;
}

int craft_csv_parse(const char *buf, size_t len, const char *what, int has_header, craft_csv **out) {
    if ((!buf && len) || !out) return craft_fail(CRAFT_EINVAL, "csv_parse: NULL argument");
    if (!what) what = "(buffer)";
    craft_csv *c = calloc(1, sizeof *c);
    if (!c || !(c->what = malloc(strlen(what) + 5))) {
        free(c);
        return craft_fail(CRAFT_ENOMEM, "csv %s: no memory", what);
    }
    sprintf(c->what, "csv %s", what);
    c->has_header = has_header != 0;
    struct csv_parser p;
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        craft_csv_free(c);
        return craft_fail(CRAFT_ENOMEM, "csv %s: cannot start the parser", what);
    }
    /* Keep spaces around unquoted fields, as Python's csv module and pandas do. */
    csv_set_space_func(&p, is_space_none);
    pctx x = {.c = c};
    size_t pos = 0;
    if (len >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3)) pos = 3; /* UTF-8 byte-order mark */
    x.after_row = pos;
    int line = 0;
    while (pos < len && !x.err) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (buf + pos)) + 1 : len - pos;
        x.cur_line = ++line;
        x.chunk_end = pos + n;
        if (csv_parse(&p, buf + pos, n, on_field, on_row, &x) != n && !x.err)
            x.err = craft_fail(CRAFT_EFORMAT,
                               "%s: line %d: %s (a quote inside an unquoted field, or text "
                               "after a closing quote)",
                               c->what, line, csv_strerror(csv_error(&p)));
        pos += n;
    }
    if (!x.err && csv_fini(&p, on_field, on_row, &x) != 0 && !x.err)
        x.err = craft_fail(CRAFT_EFORMAT, "%s: line %d: quoted field not closed before the end of the input",
                           c->what, open_row_line(&x, buf, len));
    csv_free(&p);
    if (!x.err && has_header && c->nrows == 0)
        x.err = craft_fail(CRAFT_EFORMAT, "%s: empty, expected a header row", c->what);
    if (x.err) {
        craft_csv_free(c);
        return x.err;
    }
    *out = c;
    return CRAFT_OK;
}

int craft_csv_read_file(const char *path, int has_header, craft_csv **out) {
    if (!path || !out) return craft_fail(CRAFT_EINVAL, "csv_read_file: NULL argument");
    FILE *f = fopen(path, "rb");
    if (!f) return craft_fail(CRAFT_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > CSV_MAX_FILE) {
        fclose(f);
        return craft_fail(CRAFT_EIO, "csv %s: not a regular file of at most 4 GiB", path);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n ? n : 1);
    if (!buf) {
        fclose(f);
        return craft_fail(CRAFT_ENOMEM, "csv %s: no memory for %zu bytes", path, n);
    }
    size_t got = fread(buf, 1, n, f);
    int e = errno, bad = ferror(f);
    fclose(f);
    if (got != n || bad) {
        free(buf);
        return craft_fail(CRAFT_EIO, "csv %s: read error: %s", path,
                          bad ? strerror(e) : "file shrank while reading");
    }
    int rc = craft_csv_parse(buf, n, path, has_header, out);
    free(buf);
    return rc;
}

int craft_csv_rows(const craft_csv *c) { return c ? c->nrows - (c->has_header && c->nrows > 0) : 0; }
int craft_csv_cols(const craft_csv *c) { return c ? c->cols : 0; }

static const char *stored_cell(const craft_csv *c, int r, int col) {
    if (!c || r < 0 || r >= c->nrows || col < 0 || col >= c->cols) return NULL;
    return c->arena + c->cell[(size_t)r * (size_t)c->cols + (size_t)col];
}

const char *craft_csv_header(const craft_csv *c, int col) {
    return c && c->has_header ? stored_cell(c, 0, col) : NULL;
}

const char *craft_csv_cell(const craft_csv *c, int row, int col) {
    if (!c || row < 0) return NULL;
    return stored_cell(c, row + c->has_header, col);
}

int craft_csv_row_line(const craft_csv *c, int row) {
    if (!c || row < 0 || row + c->has_header >= c->nrows) return 0;
    return c->line[row + c->has_header];
}

int craft_csv_column_index(const craft_csv *c, const char *name, int *col) {
    if (!c || !name || !col) return craft_fail(CRAFT_EINVAL, "csv_column_index: NULL argument");
    if (!c->has_header) return craft_fail(CRAFT_EINVAL, "%s: no header row, columns have no names", c->what);
    for (int j = 0; j < c->cols; j++)
        if (!strcmp(stored_cell(c, 0, j), name)) {
            *col = j;
            return CRAFT_OK;
        }
    char list[400];
    size_t k = 0;
    list[0] = 0;
    for (int j = 0; j < c->cols && k + 4 < sizeof list; j++)
        k += (size_t)snprintf(list + k, sizeof list - k, j ? ", %s" : "%s", stored_cell(c, 0, j));
    return craft_fail(CRAFT_EINVAL, "%s: no column '%s' (columns: %s)", c->what, name, list);
}

/* "line 17, column label" for messages. */
static const char *where(const craft_csv *c, int row, int col, char *buf, size_t n) {
    const char *h = craft_csv_header(c, col);
    if (h) snprintf(buf, n, "line %d, column %s", craft_csv_row_line(c, row), h);
    else snprintf(buf, n, "line %d, column %d", craft_csv_row_line(c, row), col + 1);
    return buf;
}

int craft_csv_cell_double(const craft_csv *c, int row, int col, double *out) {
    if (!c || !out) return craft_fail(CRAFT_EINVAL, "csv_cell_double: NULL argument");
    const char *s = craft_csv_cell(c, row, col);
    if (!s)
        return craft_fail(CRAFT_EINVAL, "%s: cell (%d, %d) out of range (%d rows, %d columns)", c->what, row,
                          col, craft_csv_rows(c), c->cols);
    char w[300], *end;
    errno = 0;
    double v = strtod(s, &end);
    while (end != s && (*end == ' ' || *end == '\t')) end++;
    if (end == s || *end)
        return craft_fail(CRAFT_EFORMAT, "%s: %s: \"%.60s\" is not a number", c->what,
                          where(c, row, col, w, sizeof w), s);
    *out = v;
    return CRAFT_OK;
}

int craft_csv_cell_int64(const craft_csv *c, int row, int col, int64_t *out) {
    if (!c || !out) return craft_fail(CRAFT_EINVAL, "csv_cell_int64: NULL argument");
    const char *s = craft_csv_cell(c, row, col);
    if (!s)
        return craft_fail(CRAFT_EINVAL, "%s: cell (%d, %d) out of range (%d rows, %d columns)", c->what, row,
                          col, craft_csv_rows(c), c->cols);
    char w[300], *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    int range = errno == ERANGE;
    while (end != s && (*end == ' ' || *end == '\t')) end++;
    if (end != s && !*end && !range) {
        *out = v;
        return CRAFT_OK;
    }
    /* "1.0" as pandas writes integer columns that had a missing value */
    double d = strtod(s, &end);
    while (end != s && (*end == ' ' || *end == '\t')) end++;
    if (end != s && !*end && d == floor(d) && fabs(d) <= 9007199254740992.0) {
        *out = (int64_t)d;
        return CRAFT_OK;
    }
    return craft_fail(CRAFT_EFORMAT, "%s: %s: \"%.60s\" is not an integer", c->what,
                      where(c, row, col, w, sizeof w), s);
}

void craft_csv_free(craft_csv *c) {
    if (!c) return;
    free(c->what);
    free(c->arena);
    free(c->cell);
    free(c->line);
    free(c);
}

/* ---- writing */
struct craft_csv_writer {
    FILE *f;
    char *what;
    int cols;
};

int craft_csv_writer_open(const char *path, craft_csv_writer **out) {
    if (!path || !out) return craft_fail(CRAFT_EINVAL, "csv_writer_open: NULL argument");
    craft_csv_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->what = malloc(strlen(path) + 5))) {
        free(w);
        return craft_fail(CRAFT_ENOMEM, "csv %s: no memory", path);
    }
    sprintf(w->what, "csv %s", path);
    w->cols = -1;
    if (!(w->f = fopen(path, "wb"))) {
        int rc = craft_fail(CRAFT_EIO, "cannot open %s for writing: %s", path, strerror(errno));
        free(w->what);
        free(w);
        return rc;
    }
    *out = w;
    return CRAFT_OK;
}

static int needs_quotes(const char *s, int only_field) {
    size_t n = strlen(s);
    if (n == 0) return only_field; /* a lone empty field would read back as a blank line */
    if (strpbrk(s, ",\"\r\n")) return 1;
    return s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' || s[n - 1] == '\t';
}

int craft_csv_writer_row(craft_csv_writer *w, int n, const char **cells) {
    if (!w || n <= 0 || !cells) return craft_fail(CRAFT_EINVAL, "csv_writer_row: NULL argument or no cells");
    if (w->cols >= 0 && n != w->cols)
        return craft_fail(CRAFT_EINVAL, "%s: row of %d cells, expected %d as in the first row", w->what, n,
                          w->cols);
    w->cols = n;
    for (int i = 0; i < n; i++) {
        const char *s = cells[i] ? cells[i] : "";
        if (i) fputc(',', w->f);
        if (needs_quotes(s, n == 1)) {
            fputc('"', w->f);
            for (; *s; s++) {
                if (*s == '"') fputc('"', w->f);
                fputc(*s, w->f);
            }
            fputc('"', w->f);
        } else {
            fputs(s, w->f);
        }
    }
    fputc('\n', w->f);
    if (ferror(w->f)) return craft_fail(CRAFT_EIO, "%s: write failed: %s", w->what, strerror(errno));
    return CRAFT_OK;
}

int craft_csv_writer_close(craft_csv_writer *w) {
    if (!w) return CRAFT_OK;
    int bad = ferror(w->f);
    int rc = fclose(w->f);
    int e = errno;
    int out = CRAFT_OK;
    if (bad || rc != 0) out = craft_fail(CRAFT_EIO, "%s: write failed: %s", w->what, strerror(e ? e : EIO));
    free(w->what);
    free(w);
    return out;
}
