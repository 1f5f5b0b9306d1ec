/*
 * The ring's compiled kernels: the block encoder and the sample digest.
 *
 * Each is one call that lets go of the GIL for all of its work. A ring
 * server's consumer thread applies batches in Python while its sealer thread
 * encodes blocks; numpy gives the GIL up and takes it back around every
 * call, so beside a thread running Python each of thousands of small calls
 * waits for its turn. Here the work runs while the other thread keeps the GIL.
 *
 * zstd is the system's libzstd, opened when the module loads: its few
 * functions are declared here, so building needs no zstd headers.
 *
 * The layouts are pegasus_kafka/ring/blocks.py's and content.py's, whose
 * docstrings define them; the unit tests pin both.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef size_t (*compress_fn)(void *, void *, size_t, const void *, size_t, int);
typedef size_t (*bound_fn)(size_t);
typedef unsigned (*is_error_fn)(size_t);
typedef void *(*create_fn)(void);
typedef size_t (*free_fn)(void *);

static compress_fn zstd_compress;
static bound_fn zstd_bound;
static is_error_fn zstd_is_error;
static create_fn zstd_create;
static free_fn zstd_free;

#define MAGIC "PB"
#define HEADER_SIZE 19
#define MODE_FLOAT 0
#define MODE_DECIMAL 1
#define F_RAW 0x80
#define MAX_EXACT 4503599627370496.0 /* 2**52 */

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
static int scale_of(const double *flat, Py_ssize_t m) {
    for (int k = 0; k < 7; k++) {
        Py_ssize_t i = 0;
        while (i < m && fits(flat[i], POWERS[k])) i++;
        if (i == m) return k;
    }
    return -1;
}

/* words[:m] byte-shuffled at out: byte j of word p at j * m + p. */
static void shuffle(uint8_t *out, const uint64_t *words, Py_ssize_t m) {
    for (Py_ssize_t p = 0; p < m; p++) {
        uint64_t w = words[p];
        for (int j = 0; j < 8; j++) out[j * m + p] = (uint8_t)(w >> (8 * j));
    }
}

static void put_le(uint8_t *out, uint64_t v, int nbytes) {
    for (int j = 0; j < nbytes; j++) out[j] = (uint8_t)(v >> (8 * j));
}

typedef struct {
    const int64_t *times;
    const double *values; /* n rows of width values */
    const uint8_t *tails; /* ntails columns of n bytes */
    const int64_t *starts;
    Py_ssize_t n, runs;
    int width, ntails, raw_below, version, level;
    uint8_t *out;
    int64_t *offsets; /* runs + 1 */
    size_t error;     /* a zstd error code, or 0 */
} Encoding;

/* The blocks, one after another in e->out; runs without the GIL. */
static void encode_all(Encoding *e, void *cctx, uint8_t *body, double *flat, uint64_t *words,
                       uint64_t *steps) {
    const int w = e->width;
    int64_t pos = 0;
    for (Py_ssize_t g = 0; g < e->runs; g++) {
        const int64_t a = e->starts[g];
        const int64_t c = (g + 1 < e->runs ? e->starts[g + 1] : e->n) - a;
        const int64_t m = c * w;
        /* Values laid out per run, limit columns one after another. */
        for (int col = 0; col < w; col++)
            for (int64_t i = 0; i < c; i++) flat[col * c + i] = e->values[(a + i) * w + col];
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
        const int64_t t0 = c ? e->times[a] : 0;
        uint64_t prev_t = (uint64_t)t0;
        for (int64_t i = 0; i < c; i++) {
            steps[i] = (uint64_t)e->times[a + i] - prev_t;
            prev_t = (uint64_t)e->times[a + i];
        }
        shuffle(body, steps, c);
        shuffle(body + 8 * c, words, m);
        int64_t at = 8 * c + 8 * m;
        for (int t = 0; t < e->ntails; t++, at += c) memcpy(body + at, e->tails + t * e->n + a, c);
        const int raw = c < e->raw_below;
        uint8_t *h = e->out + pos;
        memcpy(h, MAGIC, 2);
        h[2] = (uint8_t)e->version;
        h[3] = (uint8_t)((scale >= 0 ? MODE_DECIMAL : MODE_FLOAT) | (raw ? F_RAW : 0));
        h[4] = (uint8_t)(scale > 0 ? scale : 0);
        h[5] = (uint8_t)w;
        h[6] = e->ntails == 3;
        put_le(h + 7, (uint64_t)c, 4);
        put_le(h + 11, (uint64_t)t0, 8);
        e->offsets[g] = pos;
        pos += HEADER_SIZE;
        if (raw) {
            memcpy(e->out + pos, body, at);
            pos += at;
        } else {
            size_t made = zstd_compress(cctx, e->out + pos, zstd_bound(at), body, at, e->level);
            if (zstd_is_error(made)) {
                e->error = made;
                return;
            }
            pos += (int64_t)made;
        }
    }
    e->offsets[e->runs] = pos;
}

static PyObject *encode_runs(PyObject *self, PyObject *args) {
    Py_buffer times, values, tails, starts;
    Encoding e = {0};
    if (!PyArg_ParseTuple(args, "y*y*y*y*iiiii", &times, &values, &tails, &starts, &e.width,
                          &e.ntails, &e.raw_below, &e.version, &e.level))
        return NULL;
    PyObject *result = NULL;
    e.n = times.len / 8;
    e.runs = starts.len / 8;
    e.times = times.buf;
    e.values = values.buf;
    e.tails = tails.buf;
    e.starts = starts.buf;
    if (e.width < 1 || values.len != e.n * e.width * 8 || tails.len != e.n * e.ntails) {
        PyErr_SetString(PyExc_ValueError, "columns of different lengths");
        goto done;
    }
    /* The most each block may take, and the longest run's scratch space. */
    int64_t cap = 0, biggest = 1;
    for (Py_ssize_t g = 0; g < e.runs; g++) {
        int64_t c = (g + 1 < e.runs ? e.starts[g + 1] : e.n) - e.starts[g];
        if (c < 0 || e.starts[g] < 0 || e.starts[g] > e.n) {
            PyErr_SetString(PyExc_ValueError, "run starts out of order or out of range");
            goto done;
        }
        int64_t size = c * (8 + 8 * e.width + e.ntails);
        cap += HEADER_SIZE + (c < e.raw_below ? size : (int64_t)zstd_bound(size));
        if (c * e.width > biggest) biggest = c * e.width;
    }
    e.out = malloc(cap ? cap : 1);
    e.offsets = malloc((e.runs + 1) * sizeof(int64_t));
    uint8_t *body = malloc(biggest * (16 + e.ntails));
    double *flat = malloc(biggest * 8);
    uint64_t *words = malloc(biggest * 8);
    uint64_t *steps = malloc(biggest * 8);
    void *cctx = zstd_create();
    if (!e.out || !e.offsets || !body || !flat || !words || !steps || !cctx) {
        PyErr_NoMemory();
    } else {
        Py_BEGIN_ALLOW_THREADS
        encode_all(&e, cctx, body, flat, words, steps);
        Py_END_ALLOW_THREADS
        if (e.error) {
            PyErr_Format(PyExc_RuntimeError, "zstd could not compress a block (error code %zu)",
                         e.error);
        } else if ((result = PyList_New(e.runs))) {
            for (Py_ssize_t g = 0; g < e.runs; g++) {
                PyObject *blob = PyBytes_FromStringAndSize((char *)e.out + e.offsets[g],
                                                           e.offsets[g + 1] - e.offsets[g]);
                if (!blob) {
                    Py_CLEAR(result);
                    break;
                }
                PyList_SET_ITEM(result, g, blob);
            }
        }
    }
    if (cctx) zstd_free(cctx);
    free(steps);
    free(words);
    free(flat);
    free(body);
    free(e.offsets);
    free(e.out);
done:
    PyBuffer_Release(&times);
    PyBuffer_Release(&values);
    PyBuffer_Release(&tails);
    PyBuffer_Release(&starts);
    return result;
}

/* SplitMix64's finaliser. */
static inline uint64_t mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static PyObject *sum_of_hashes(PyObject *self, PyObject *args) {
    unsigned long long seed;
    Py_buffer ikeys, times, words, quality, role, changes;
    int width;
    if (!PyArg_ParseTuple(args, "Ky*y*y*iy*y*y*", &seed, &ikeys, &times, &words, &width, &quality,
                          &role, &changes))
        return NULL;
    PyObject *result = NULL;
    const Py_ssize_t n = ikeys.len / 8;
    if (width < 1 || times.len != n * 8 || words.len != n * width * 8 || quality.len != n ||
        role.len != n || (changes.len && changes.len != n)) {
        PyErr_SetString(PyExc_ValueError, "columns of different lengths");
    } else {
        const uint64_t *k = ikeys.buf, *t = times.buf, *v = words.buf;
        const uint8_t *q = quality.buf, *r = role.buf, *ch = changes.buf;
        const int has_changes = changes.len > 0;
        uint64_t total = 0;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            uint64_t h = mix(k[i] ^ seed);
            h = mix(h ^ t[i]);
            for (int c = 0; c < width; c++) h = mix(h ^ v[i * width + c]);
            uint64_t flags = (uint64_t)q[i] | ((uint64_t)r[i] << 8);
            if (has_changes) flags |= (uint64_t)ch[i] << 16;
            total += mix(h ^ flags);
        }
        Py_END_ALLOW_THREADS
        result = PyLong_FromUnsignedLongLong(total);
    }
    PyBuffer_Release(&ikeys);
    PyBuffer_Release(&times);
    PyBuffer_Release(&words);
    PyBuffer_Release(&quality);
    PyBuffer_Release(&role);
    PyBuffer_Release(&changes);
    return result;
}

static PyMethodDef methods[] = {
    {"encode_runs", encode_runs, METH_VARARGS,
     "encode_runs(times, values, tails, starts, width, ntails, raw_below, version, level)"
     " -> list[bytes]: one block per run."},
    {"sum_of_hashes", sum_of_hashes, METH_VARARGS,
     "sum_of_hashes(seed, ikeys, times, words, width, quality, role, changes) -> int:"
     " the sum modulo 2**64 of every sample's hash."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", NULL, -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) {
    void *lib = dlopen("libzstd.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) lib = dlopen("libzstd.so", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        PyErr_SetString(PyExc_ImportError,
                        "libzstd is not installed; the ring's block encoder needs it "
                        "(Debian/Ubuntu: apt-get install libzstd1)");
        return NULL;
    }
    zstd_compress = (compress_fn)dlsym(lib, "ZSTD_compressCCtx");
    zstd_bound = (bound_fn)dlsym(lib, "ZSTD_compressBound");
    zstd_is_error = (is_error_fn)dlsym(lib, "ZSTD_isError");
    zstd_create = (create_fn)dlsym(lib, "ZSTD_createCCtx");
    zstd_free = (free_fn)dlsym(lib, "ZSTD_freeCCtx");
    if (!zstd_compress || !zstd_bound || !zstd_is_error || !zstd_create || !zstd_free) {
        PyErr_SetString(PyExc_ImportError, "libzstd lacks a function the block encoder calls");
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m && (PyModule_AddIntConstant(m, "HEADER_SIZE", HEADER_SIZE) ||
              PyModule_AddIntConstant(m, "MODE_FLOAT", MODE_FLOAT) ||
              PyModule_AddIntConstant(m, "MODE_DECIMAL", MODE_DECIMAL) ||
              PyModule_AddIntConstant(m, "F_RAW", F_RAW) ||
              PyModule_AddObject(m, "MAGIC", PyBytes_FromString(MAGIC)))) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
