/*
 * The ring's compiled sealing and merging: a seal's segments (_seal.c), and
 * the block coder (_coder.c): blocks, their summaries, and the level-1 merge
 * that makes them from segments. Plain C without Python, so all of it runs
 * while the GIL is let go; _kernels.c is the Python glue.
 */
#ifndef PEGASUS_CODER_H
#define PEGASUS_CODER_H

#include <stddef.h>
#include <stdint.h>

#define MAGIC "PB"
#define HEADER_SIZE 19
#define MODE_FLOAT 0
#define MODE_DECIMAL 1
#define F_RAW 0x80
/* The summary layout of pegasus_kafka/ring/rollup.py: a packed header, then
 * one row of nine float64 per hour. */
#define SUMMARY_HEADER_SIZE 54
#define SUMMARY_ROW_SIZE 72
#define HOUR_MS 3600000
#define ROLE_PRIMARY 0
#define NO_TIME (-(INT64_C(1) << 62))

typedef size_t (*compress_fn)(void *, void *, size_t, const void *, size_t, int);
typedef size_t (*bound_fn)(size_t);
typedef unsigned (*is_error_fn)(size_t);
typedef void *(*create_fn)(void);
typedef size_t (*free_fn)(void *);

/* The system libzstd's functions, set when the module loads. */
extern compress_fn zstd_compress;
extern bound_fn zstd_bound;
extern is_error_fn zstd_is_error;
extern create_fn zstd_create;
extern free_fn zstd_free;

typedef struct {
    uint8_t *p;
    int64_t len, cap;
} Buf;

/* What a run of encoding writes, and the scratch space it reuses. */
typedef struct {
    int width, ntails, raw_below, version, level;
    int min_summary; /* runs shorter get no summary; below 0, none does */
    void *cctx;
    int64_t room; /* samples the scratch space holds */
    uint8_t *body;
    double *flat;
    uint64_t *words, *steps;
    Buf blocks, sums;
    int64_t *block_end, *sum_end; /* per run; an empty summary means none */
    int64_t runs, done;
    size_t zstd_error; /* a zstd error code, or 0 */
    int no_memory;
} Coder;

/* A decoded segment's columns (pegasus_kafka/ring/segments.py). */
typedef struct {
    const int64_t *ikeys, *starts, *times;
    const double *values;
    const uint8_t *tails[3];
    int64_t runs, n;
} Source;

/* A segment's header: magic, version, width, has changes, a zero byte, runs
 * (u32) and samples (u32), little-endian. */
#define SEGMENT_MAGIC "PS"
#define SEGMENT_VERSION 1
#define SEGMENT_HEADER_SIZE 14

/* One scan frame's columns (pegasus_kafka/schema.py's Frame). */
typedef struct {
    const int64_t *ikeys;
    const double *values; /* n rows of width values */
    const uint8_t *quality, *changes;
    int64_t n, time;
    uint8_t role;
} Frame;

/* A seal's segments, one after another in p; segment s ends at end[s]. */
typedef struct {
    uint8_t *p;
    int64_t bytes, count;
    int64_t *end, *first_ikey;
} Sealed;

/* One (host, day)'s frames, given in arrival order, as segments of up to
 * runs_per_segment runs: the samples by point, then time, then arrival.
 * 0, or -1 without memory. */
int seal_frames(const Frame *fr, int k, int width, int ntails, int64_t runs_per_segment,
                Sealed *out);
void sealed_free(Sealed *s);

/* 0, or -1 without memory. */
int coder_init(Coder *c, int64_t runs);
void coder_free(Coder *c);
/* Encodes one run as a block, and summarises it when due; -1 on an error
 * the coder records. */
int coder_run(Coder *c, const int64_t *times, const double *values, const uint8_t *const *tails,
              int64_t n);
/* Each point of piece[:points] (ascending), its runs in the sources (in seal
 * order) merged by time, as one block: ties keep seal order, and a run's own
 * order. -1 on an error the coder records, -2 when a point has no run. */
int merge_runs(Coder *c, const Source *src, int k, const int64_t *piece, int64_t points);

#endif
