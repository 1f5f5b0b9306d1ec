/*
 * The seal's regrouping (see _coder.h): one (host, day)'s frames, in arrival
 * order, as segments of runs by point. The layout is
 * pegasus_kafka/ring/segments.py's, whose docstring defines it.
 */
#include <stdlib.h>
#include <string.h>

#include "_coder.h"

/* Columns are written as the machine holds them: the layout is little-endian. */
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "segments are written on little-endian machines only"
#endif

/* A stable order of rows [0, n) by ikey, in order[], using tmp[]. */
static void sort_by_ikey(const int64_t *ikeys, int64_t *order, int64_t *tmp, int64_t n) {
    if (n < 2) return;
    const int64_t half = n / 2;
    sort_by_ikey(ikeys, order, tmp, half);
    sort_by_ikey(ikeys, order + half, tmp, n - half);
    int64_t a = 0, b = half, o = 0;
    while (a < half && b < n) tmp[o++] = ikeys[order[b]] < ikeys[order[a]] ? order[b++] : order[a++];
    while (a < half) tmp[o++] = order[a++];
    while (b < n) tmp[o++] = order[b++];
    memcpy(order, tmp, n * sizeof(int64_t));
}

/* The ascending keys in both a[:na] and b[:nb] (each ascending, no repeats)
 * at out, without repeats; their count. */
static int64_t union_of(const int64_t *a, int64_t na, const int64_t *b, int64_t nb, int64_t *out) {
    int64_t i = 0, j = 0, o = 0;
    while (i < na && j < nb) {
        if (a[i] < b[j]) out[o++] = a[i++];
        else if (b[j] < a[i]) out[o++] = b[j++];
        else out[o++] = a[i++], j++;
    }
    while (i < na) out[o++] = a[i++];
    while (j < nb) out[o++] = b[j++];
    return o;
}

typedef struct {
    int64_t time;
    int frame;
} Turn;

static int by_time_then_arrival(const void *x, const void *y) {
    const Turn *a = x, *b = y;
    if (a->time != b->time) return a->time < b->time ? -1 : 1;
    return (a->frame > b->frame) - (a->frame < b->frame);
}

int seal_frames(const Frame *fr, int k, int width, int ntails, int64_t runs_per_segment,
                Sealed *out) {
    memset(out, 0, sizeof(*out));
    int64_t n = 0, longest = 0;
    for (int f = 0; f < k; f++) {
        n += fr[f].n;
        if (fr[f].n > longest) longest = fr[f].n;
    }
    int64_t **perm = calloc(k + 1, sizeof(int64_t *));
    int64_t *tmp = malloc((longest + 1) * sizeof(int64_t)), *first = malloc((k + 2) * sizeof(int64_t));
    int64_t *keys = malloc((n + 1) * sizeof(int64_t)), *spare = malloc((n + 1) * sizeof(int64_t));
    int64_t *bounds = malloc((k + 2) * sizeof(int64_t)), *rank = malloc((n + 1) * sizeof(int64_t));
    int64_t *row = malloc((n + 1) * sizeof(int64_t)), *run_start = malloc((n + 2) * sizeof(int64_t));
    int *row_frame = malloc((n + 1) * sizeof(int));
    Turn *turns = malloc((k + 1) * sizeof(Turn));
    int rc = -1;
    if (!perm || !tmp || !first || !keys || !spare || !bounds || !rank || !row || !run_start ||
        !row_frame || !turns)
        goto done;
    /* Frames come sorted by point from collectors; any other is sorted here,
     * stably. first[f] is where frame f's rows begin among all rows. */
    first[0] = 0;
    for (int f = 0; f < k; f++) {
        first[f + 1] = first[f] + fr[f].n;
        int64_t i = 1;
        while (i < fr[f].n && fr[f].ikeys[i - 1] <= fr[f].ikeys[i]) i++;
        if (i >= fr[f].n) continue;
        if (!(perm[f] = malloc(fr[f].n * sizeof(int64_t)))) goto done;
        for (int64_t j = 0; j < fr[f].n; j++) perm[f][j] = j;
        sort_by_ikey(fr[f].ikeys, perm[f], tmp, fr[f].n);
    }
    /* The points: each frame's keys without repeats, then unions of
     * neighbouring lists until one is left, in O(n log k). */
    int lists = 0;
    int64_t at = 0;
    bounds[0] = 0;
    for (int f = 0; f < k; f++) {
        for (int64_t j = 0; j < fr[f].n; j++) {
            const int64_t key = fr[f].ikeys[perm[f] ? perm[f][j] : j];
            if (at == bounds[lists] || keys[at - 1] != key) keys[at++] = key;
        }
        if (at > bounds[lists]) bounds[++lists] = at;
    }
    while (lists > 1) {
        int merged = 0;
        int64_t o = 0;
        for (int l = 0; l < lists; l += 2) {
            const int64_t a0 = bounds[l], a1 = bounds[l + 1];
            if (l + 1 < lists) {
                o += union_of(keys + a0, a1 - a0, keys + a1, bounds[l + 2] - a1, spare + o);
            } else {
                memcpy(spare + o, keys + a0, (a1 - a0) * sizeof(int64_t));
                o += a1 - a0;
            }
            bounds[++merged] = o;
        }
        lists = merged;
        int64_t *swap = keys;
        keys = spare;
        spare = swap;
    }
    const int64_t runs = lists ? bounds[1] : 0;
    /* Each row's point (its rank among the points), and each point's count. */
    int64_t *count = spare; /* free again: runs + 1 <= n + 1 entries */
    memset(count, 0, (runs + 1) * sizeof(int64_t));
    for (int f = 0; f < k; f++) {
        if (!fr[f].n) continue;
        int64_t lo = 0, hi = runs, j0 = perm[f] ? perm[f][0] : 0;
        while (lo < hi) { /* the frame's first point */
            const int64_t mid = lo + (hi - lo) / 2;
            if (keys[mid] < fr[f].ikeys[j0]) lo = mid + 1;
            else hi = mid;
        }
        for (int64_t j = 0; j < fr[f].n; j++) {
            const int64_t key = fr[f].ikeys[perm[f] ? perm[f][j] : j];
            while (keys[lo] != key) lo++;
            rank[first[f] + j] = lo;
            count[lo]++;
        }
    }
    run_start[0] = 0;
    for (int64_t r = 0; r < runs; r++) run_start[r + 1] = run_start[r] + count[r];
    /* A counting sort: frames taken by time, then arrival, each in point
     * order, so every point's rows fall in (time, arrival, place) order. */
    for (int f = 0; f < k; f++) turns[f] = (Turn){fr[f].time, f};
    qsort(turns, k, sizeof(Turn), by_time_then_arrival);
    int64_t *next = count;
    memcpy(next, run_start, runs * sizeof(int64_t));
    for (int t = 0; t < k; t++) {
        const int f = turns[t].frame;
        for (int64_t j = 0; j < fr[f].n; j++) {
            const int64_t dest = next[rank[first[f] + j]]++;
            row_frame[dest] = f;
            row[dest] = perm[f] ? perm[f][j] : j;
        }
    }
    /* Segments of up to runs_per_segment runs, packed one after another. */
    const int64_t segs = (runs + runs_per_segment - 1) / runs_per_segment;
    const int64_t row_size = 8 + 8 * width + ntails;
    out->count = segs;
    out->bytes = SEGMENT_HEADER_SIZE * segs + 16 * runs + row_size * n;
    out->p = malloc(out->bytes + 1);
    out->end = malloc((segs + 1) * sizeof(int64_t));
    out->first_ikey = malloc((segs + 1) * sizeof(int64_t));
    if (!out->p || !out->end || !out->first_ikey) goto done;
    uint8_t *w = out->p;
    for (int64_t s = 0; s < segs; s++) {
        const int64_t r0 = s * runs_per_segment;
        const int64_t r1 = r0 + runs_per_segment < runs ? r0 + runs_per_segment : runs;
        const int64_t a = run_start[r0], b = run_start[r1], m = b - a;
        out->first_ikey[s] = fr[row_frame[a]].ikeys[row[a]];
        memcpy(w, SEGMENT_MAGIC, 2);
        w[2] = SEGMENT_VERSION;
        w[3] = (uint8_t)width;
        w[4] = ntails == 3;
        w[5] = 0;
        const uint32_t counts[2] = {(uint32_t)(r1 - r0), (uint32_t)m};
        memcpy(w + 6, counts, 8); /* little-endian, as the layout is */
        w += SEGMENT_HEADER_SIZE;
        /* Columns: ikeys and starts (a run each), times, values, tails (a row
         * each); copied bytewise, since a segment's header leaves them
         * unaligned. */
        const int64_t nr = r1 - r0;
        uint8_t *ikeys = w, *starts = w + 8 * nr, *times = w + 16 * nr;
        uint8_t *values = times + 8 * m, *tails = values + 8 * m * width;
        for (int64_t r = r0; r < r1; r++) {
            const int64_t o = run_start[r], start = o - a;
            memcpy(ikeys + 8 * (r - r0), &fr[row_frame[o]].ikeys[row[o]], 8);
            memcpy(starts + 8 * (r - r0), &start, 8);
        }
        for (int64_t o = a; o < b; o++) {
            const Frame *f = &fr[row_frame[o]];
            const int64_t i = row[o], at = o - a;
            memcpy(times + 8 * at, &f->time, 8);
            memcpy(values + 8 * width * at, f->values + i * width, 8 * width);
            tails[at] = f->quality[i];
            tails[m + at] = f->role;
            if (ntails == 3) tails[2 * m + at] = f->changes[i];
        }
        w = tails + ntails * m;
        out->end[s] = w - out->p;
    }
    rc = 0;
done:
    for (int f = 0; perm && f < k; f++) free(perm[f]);
    free(perm);
    free(tmp);
    free(first);
    free(keys);
    free(spare);
    free(bounds);
    free(rank);
    free(row);
    free(run_start);
    free(row_frame);
    free(turns);
    return rc;
}

void sealed_free(Sealed *s) {
    free(s->p);
    free(s->end);
    free(s->first_ikey);
}
