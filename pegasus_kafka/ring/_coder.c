/*
 * The block coder (see _coder.h). The layouts are pegasus_kafka/ring/
 * blocks.py's and rollup.py's, whose docstrings define them; the unit tests
 * pin both, and pin the summaries to what numpy computes from the samples.
 */
#include "_coder.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

compress_fn zstd_compress;
bound_fn zstd_bound;
is_error_fn zstd_is_error;
create_fn zstd_create;
free_fn zstd_free;

#define MAX_EXACT 4503599627370496.0 /* 2**52 */
#define BIG_GAP (INT64_C(1) << 62)

static const double POWERS[7] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6};

/* v scaled by f is an integer within 2**52 that decodes back to the same
 * bits. Decoding divides an int64, whose zero is +0.0: adding 0.0 turns a
 * rounded -0.0 into that, so -0.0 itself never fits. rint rounds half to
 * even, as numpy's round does. */
static int fits(double v, double f) {
    double scaled = rint(v * f) + 0.0;
    if (!(fabs(scaled) < MAX_EXACT)) return 0;
    double back = scaled / f;
    uint64_t a, b;
    memcpy(&a, &back, 8);
    memcpy(&b, &v, 8);
    return a == b;
}

/* The smallest k in 0..6 for which every value is an exact k-place decimal
 * within 2**52 when scaled; -1 when none is. */
static int scale_of(const double *flat, int64_t m) {
    for (int k = 0; k < 7; k++) {
        int64_t i = 0;
        while (i < m && fits(flat[i], POWERS[k])) i++;
        if (i == m) return k;
    }
    return -1;
}

/* words[:m] byte-shuffled at out: byte j of word p at j * m + p. */
static void shuffle(uint8_t *out, const uint64_t *words, int64_t m) {
    for (int64_t p = 0; p < m; p++) {
        uint64_t w = words[p];
        for (int j = 0; j < 8; j++) out[j * m + p] = (uint8_t)(w >> (8 * j));
    }
}

static void put_le(uint8_t *out, uint64_t v, int nbytes) {
    for (int j = 0; j < nbytes; j++) out[j] = (uint8_t)(v >> (8 * j));
}

static void put_double(uint8_t *out, double v) {
    uint64_t bits;
    memcpy(&bits, &v, 8);
    put_le(out, bits, 8);
}

/* Room for `more` bytes at the end of b; NULL without memory. */
static uint8_t *reserve(Buf *b, int64_t more) {
    if (b->len + more > b->cap) {
        int64_t cap = b->cap ? b->cap : 1 << 16;
        while (cap < b->len + more) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) return NULL;
        b->p = p;
        b->cap = cap;
    }
    return b->p + b->len;
}

int coder_init(Coder *c, int64_t runs) {
    c->runs = runs;
    c->done = 0;
    c->block_end = malloc((runs + 1) * sizeof(int64_t));
    c->sum_end = malloc((runs + 1) * sizeof(int64_t));
    c->cctx = zstd_create();
    if (!c->block_end || !c->sum_end || !c->cctx) {
        c->no_memory = 1;
        return -1;
    }
    return 0;
}

void coder_free(Coder *c) {
    if (c->cctx) zstd_free(c->cctx);
    free(c->body);
    free(c->flat);
    free(c->words);
    free(c->steps);
    free(c->blocks.p);
    free(c->sums.p);
    free(c->block_end);
    free(c->sum_end);
}

/* Scratch space for a run of n samples. */
static int make_room(Coder *c, int64_t n) {
    if (n <= c->room) return 0;
    int64_t m = n * c->width;
    free(c->body);
    free(c->flat);
    free(c->words);
    free(c->steps);
    c->body = malloc(m * 16 + n * c->ntails + 1);
    c->flat = malloc(m * 8 + 8);
    c->words = malloc(m * 8 + 8);
    c->steps = malloc(n * 8 + 8);
    if (!c->body || !c->flat || !c->words || !c->steps) {
        c->room = 0;
        c->no_memory = 1;
        return -1;
    }
    c->room = n;
    return 0;
}

/* One block of n samples appended to c->blocks. */
static int encode_block(Coder *c, const int64_t *times, const double *values,
                        const uint8_t *const *tails, int64_t n) {
    const int w = c->width;
    const int64_t m = n * w;
    double *flat = c->flat;
    uint64_t *words = c->words, *steps = c->steps;
    uint8_t *body = c->body;
    /* Values laid out per run, limit columns one after another. */
    for (int col = 0; col < w; col++)
        for (int64_t i = 0; i < n; i++) flat[col * n + i] = values[i * w + col];
    const int scale = scale_of(flat, m);
    if (scale >= 0) {
        int64_t prev = 0;
        for (int64_t i = 0; i < m; i++) {
            int64_t v = (int64_t)rint(flat[i] * POWERS[scale]);
            words[i] = (uint64_t)v - (uint64_t)prev;
            prev = v;
        }
    } else {
        uint64_t prev = 0;
        for (int64_t i = 0; i < m; i++) {
            uint64_t bits;
            memcpy(&bits, &flat[i], 8);
            words[i] = bits ^ prev;
            prev = bits;
        }
    }
    /* Times as steps from the run's first, which the header holds. */
    const int64_t t0 = n ? times[0] : 0;
    uint64_t prev_t = (uint64_t)t0;
    for (int64_t i = 0; i < n; i++) {
        steps[i] = (uint64_t)times[i] - prev_t;
        prev_t = (uint64_t)times[i];
    }
    shuffle(body, steps, n);
    shuffle(body + 8 * n, words, m);
    int64_t size = 8 * n + 8 * m;
    for (int t = 0; t < c->ntails; t++, size += n) memcpy(body + size, tails[t], n);
    const int raw = n < c->raw_below;
    uint8_t *h = reserve(&c->blocks, HEADER_SIZE + (raw ? size : (int64_t)zstd_bound(size)));
    if (!h) {
        c->no_memory = 1;
        return -1;
    }
    memcpy(h, MAGIC, 2);
    h[2] = (uint8_t)c->version;
    h[3] = (uint8_t)((scale >= 0 ? MODE_DECIMAL : MODE_FLOAT) | (raw ? F_RAW : 0));
    h[4] = (uint8_t)(scale > 0 ? scale : 0);
    h[5] = (uint8_t)w;
    h[6] = c->ntails == 3;
    put_le(h + 7, (uint64_t)n, 4);
    put_le(h + 11, (uint64_t)t0, 8);
    if (raw) {
        memcpy(h + HEADER_SIZE, body, size);
        c->blocks.len += HEADER_SIZE + size;
        return 0;
    }
    size_t made = zstd_compress(c->cctx, h + HEADER_SIZE, zstd_bound(size), body, size, c->level);
    if (zstd_is_error(made)) {
        c->zstd_error = made;
        return -1;
    }
    c->blocks.len += HEADER_SIZE + (int64_t)made;
    return 0;
}

static int64_t hour_of(int64_t t) {
    int64_t q = t / HOUR_MS;
    return (t % HOUR_MS != 0 && t < 0) ? q - 1 : q;
}

/* numpy's sum of a float64 run as np.add.reduce computes it: pairwise, in
 * blocks of up to 128 summed with eight accumulators. */
static double pairwise(const double *a, int64_t n) {
    if (n < 8) {
        double r = -0.0;
        for (int64_t i = 0; i < n; i++) r += a[i];
        return r;
    }
    if (n <= 128) {
        double r[8];
        for (int j = 0; j < 8; j++) r[j] = a[j];
        int64_t i = 8;
        for (; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++) r[j] += a[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += a[i];
        return res;
    }
    int64_t half = n / 2;
    half -= half % 8;
    return pairwise(a, half) + pairwise(a + half, n - half);
}

/* The summary of a time-ordered run of n values (one column), appended to
 * c->sums; c->flat is free to use. */
static int summarise(Coder *c, const int64_t *t, const double *v, const uint8_t *role, int64_t n) {
    int64_t rows = 0;
    for (int64_t i = 0; i < n; i++) rows += i == 0 || hour_of(t[i]) != hour_of(t[i - 1]);
    uint8_t *out = reserve(&c->sums, SUMMARY_HEADER_SIZE + SUMMARY_ROW_SIZE * rows);
    if (!out) {
        c->no_memory = 1;
        return -1;
    }
    int64_t min_gap = BIG_GAP, max_gap = 0, first_p = BIG_GAP, last_p = NO_TIME;
    uint8_t role_min = 255, role_max = 0;
    for (int64_t i = 0; i < n; i++) {
        if (i) {
            int64_t step = t[i] - t[i - 1];
            if (step < min_gap) min_gap = step;
            if (step > max_gap) max_gap = step;
        }
        if (role[i] < role_min) role_min = role[i];
        if (role[i] > role_max) role_max = role[i];
        if (role[i] == ROLE_PRIMARY) {
            if (t[i] < first_p) first_p = t[i];
            if (t[i] > last_p) last_p = t[i];
        }
    }
    put_le(out, (uint64_t)t[0], 8);
    put_le(out + 8, (uint64_t)t[n - 1], 8);
    put_le(out + 16, (uint64_t)min_gap, 8);
    put_le(out + 24, (uint64_t)max_gap, 8);
    out[32] = role_min;
    out[33] = role_max;
    put_le(out + 34, (uint64_t)(first_p == BIG_GAP ? NO_TIME : first_p), 8);
    put_le(out + 42, (uint64_t)last_p, 8);
    put_le(out + 50, (uint64_t)rows, 4);
    uint8_t *row = out + SUMMARY_HEADER_SIZE;
    for (int64_t a = 0; a < n;) {
        int64_t b = a + 1;
        const int64_t hour = hour_of(t[a]);
        while (b < n && hour_of(t[b]) == hour) b++;
        int64_t finite = 0;
        double lo = v[a], hi = v[a];
        for (int64_t i = a; i < b; i++) {
            const int nan = isnan(v[i]);
            finite += !nan;
            c->flat[i - a] = nan ? 0.0 : v[i];
            if (i > a) {
                lo = fmin(lo, v[i]);
                hi = fmax(hi, v[i]);
            }
        }
        /* np.add.reduceat: the first value, plus the sum of the rest. */
        double sum = c->flat[0];
        if (b - a > 1) sum += pairwise(c->flat + 1, b - a - 1);
        const double fields[9] = {(double)(b - a), (double)finite, lo,   hi,  sum,
                                  (double)t[a],    v[a],           (double)t[b - 1], v[b - 1]};
        for (int f = 0; f < 9; f++) put_double(row + 8 * f, fields[f]);
        row += SUMMARY_ROW_SIZE;
        a = b;
    }
    c->sums.len += SUMMARY_HEADER_SIZE + SUMMARY_ROW_SIZE * rows;
    return 0;
}

int coder_run(Coder *c, const int64_t *times, const double *values, const uint8_t *const *tails,
              int64_t n) {
    if (make_room(c, n) < 0 || encode_block(c, times, values, tails, n) < 0) return -1;
    /* Tails are quality, then role. */
    if (c->min_summary >= 0 && n >= c->min_summary && n > 0 && c->width == 1 &&
        summarise(c, times, values, tails[1], n) < 0)
        return -1;
    c->block_end[c->done] = c->blocks.len;
    c->sum_end[c->done] = c->sums.len;
    c->done++;
    return 0;
}

/* Scratch for merged runs. */
typedef struct {
    int64_t room;
    int64_t *times;
    double *values;
    uint8_t *tails;
} Merged;

static int merged_room(Merged *m, int64_t n, int width, int ntails) {
    if (n <= m->room) return 0;
    free(m->times);
    free(m->values);
    free(m->tails);
    m->times = malloc(n * 8);
    m->values = malloc(n * 8 * width);
    m->tails = malloc(n * ntails + 1);
    m->room = m->times && m->values && m->tails ? n : 0;
    return m->room ? 0 : -1;
}

int merge_runs(Coder *c, const Source *src, int k, const int64_t *piece, int64_t points) {
    const int w = c->width, nt = c->ntails;
    int64_t *at = malloc((k + 1) * sizeof(int64_t)); /* each source's next run */
    int64_t *pos = malloc((k + 1) * sizeof(int64_t)), *end = malloc((k + 1) * sizeof(int64_t));
    int *which = malloc((k + 1) * sizeof(int));
    Merged m = {0};
    int rc = 0;
    if (!at || !pos || !end || !which) {
        c->no_memory = 1;
        rc = -1;
        goto done;
    }
    for (int j = 0; j < k; j++) { /* the first run at or after the piece's first point */
        int64_t lo = 0, hi = src[j].runs;
        while (lo < hi) {
            int64_t mid = lo + (hi - lo) / 2;
            if (src[j].ikeys[mid] < piece[0]) lo = mid + 1;
            else hi = mid;
        }
        at[j] = lo;
    }
    for (int64_t p = 0; p < points; p++) {
        /* The point's runs, in seal order, and whether they are already in time order. */
        int r = 0, ordered = 1;
        int64_t total = 0;
        for (int j = 0; j < k; j++) {
            const Source *s = &src[j];
            if (at[j] >= s->runs || s->ikeys[at[j]] != piece[p]) continue;
            const int64_t g = at[j]++;
            pos[r] = s->starts[g];
            end[r] = g + 1 < s->runs ? s->starts[g + 1] : s->n;
            if (end[r] == pos[r]) continue;
            if (r && s->times[pos[r]] < src[which[r - 1]].times[end[r - 1] - 1]) ordered = 0;
            which[r] = j;
            total += end[r] - pos[r];
            r++;
        }
        if (!total) {
            rc = -2;
            goto done;
        }
        if (merged_room(&m, total, w, nt) < 0) {
            c->no_memory = 1;
            rc = -1;
            goto done;
        }
        if (ordered) {
            int64_t o = 0;
            for (int q = 0; q < r; q++) {
                const Source *s = &src[which[q]];
                const int64_t len = end[q] - pos[q];
                memcpy(m.times + o, s->times + pos[q], len * 8);
                memcpy(m.values + o * w, s->values + pos[q] * w, len * 8 * w);
                for (int t = 0; t < nt; t++) memcpy(m.tails + t * total + o, s->tails[t] + pos[q], len);
                o += len;
            }
        } else {
            for (int64_t o = 0; o < total; o++) {
                int best = -1;
                for (int q = 0; q < r; q++) /* strictly earlier: ties keep seal order */
                    if (pos[q] < end[q] &&
                        (best < 0 || src[which[q]].times[pos[q]] < src[which[best]].times[pos[best]]))
                        best = q;
                const Source *s = &src[which[best]];
                const int64_t i = pos[best]++;
                m.times[o] = s->times[i];
                memcpy(m.values + o * w, s->values + i * w, 8 * w);
                for (int t = 0; t < nt; t++) m.tails[t * total + o] = s->tails[t][i];
            }
        }
        const uint8_t *tails[3] = {m.tails, m.tails + total, m.tails + 2 * total};
        if (coder_run(c, m.times, m.values, tails, total) < 0) {
            rc = -1;
            goto done;
        }
    }
done:
    free(m.times);
    free(m.values);
    free(m.tails);
    free(which);
    free(end);
    free(pos);
    free(at);
    return rc;
}
