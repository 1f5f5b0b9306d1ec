/*
 * The ring's compiled kernels: the block coder's Python glue, and the
 * sample digest.
 *
 * Each is one call that lets go of the GIL for all of its work. A ring
 * server's consumer thread applies batches in Python while its sealer thread
 * merges and encodes blocks; numpy gives the GIL up and takes it back around
 * every call, so beside a thread running Python each of thousands of small
 * calls waits for its turn. Here the work runs while the other thread keeps
 * the GIL.
 *
 * zstd is the system's libzstd, opened when the module loads: its few
 * functions are declared in _coder.h, so building needs no zstd headers.
 *
 * The layouts are pegasus_kafka/ring/blocks.py's, rollup.py's and
 * content.py's, whose docstrings define them; the unit tests pin all three.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_coder.h"

/* The coder's blocks and summaries as two lists; NULL with an exception set
 * when it failed. */
static PyObject *results(Coder *c) {
    if (c->zstd_error) {
        PyErr_Format(PyExc_RuntimeError, "zstd could not compress a block (error code %zu)",
                     c->zstd_error);
        return NULL;
    }
    if (c->no_memory) return PyErr_NoMemory();
    PyObject *blobs = PyList_New(c->done), *sums = PyList_New(c->done);
    if (!blobs || !sums) goto fail;
    int64_t b0 = 0, s0 = 0;
    for (int64_t g = 0; g < c->done; g++) {
        const int64_t b1 = c->block_end[g], s1 = c->sum_end[g];
        PyObject *blob = PyBytes_FromStringAndSize((char *)c->blocks.p + b0, b1 - b0);
        if (!blob) goto fail;
        PyList_SET_ITEM(blobs, g, blob);
        PyObject *sum = s1 > s0 ? PyBytes_FromStringAndSize((char *)c->sums.p + s0, s1 - s0)
                                : Py_NewRef(Py_None);
        if (!sum) goto fail;
        PyList_SET_ITEM(sums, g, sum);
        b0 = b1;
        s0 = s1;
    }
    return Py_BuildValue("(NN)", blobs, sums);
fail:
    Py_XDECREF(blobs);
    Py_XDECREF(sums);
    return NULL;
}

/* Runs start at or after the previous one and within n. */
static int runs_in_order(const int64_t *starts, int64_t runs, int64_t n) {
    for (int64_t g = 0; g < runs; g++) {
        const int64_t next = g + 1 < runs ? starts[g + 1] : n;
        if (starts[g] < 0 || starts[g] > next || next > n) return 0;
    }
    return 1;
}

static PyObject *encode_runs(PyObject *self, PyObject *args) {
    Py_buffer times, values, tails, starts;
    Coder c = {0};
    if (!PyArg_ParseTuple(args, "y*y*y*y*iiiiii", &times, &values, &tails, &starts, &c.width,
                          &c.ntails, &c.raw_below, &c.version, &c.level, &c.min_summary))
        return NULL;
    PyObject *result = NULL;
    const int64_t n = times.len / 8, runs = starts.len / 8;
    const int64_t *st = starts.buf;
    if (c.width < 1 || c.ntails < 2 || c.ntails > 3) {
        PyErr_SetString(PyExc_ValueError, "a layout out of range");
    } else if (values.len != n * c.width * 8 || tails.len != n * c.ntails) {
        PyErr_SetString(PyExc_ValueError, "columns of different lengths");
    } else if (!runs_in_order(st, runs, n)) {
        PyErr_SetString(PyExc_ValueError, "run starts out of order or out of range");
    } else if (coder_init(&c, runs) == 0) {
        const int64_t *t = times.buf;
        const double *v = values.buf;
        const uint8_t *tl = tails.buf;
        Py_BEGIN_ALLOW_THREADS
        for (int64_t g = 0; g < runs; g++) {
            const int64_t a = st[g], len = (g + 1 < runs ? st[g + 1] : n) - a;
            const uint8_t *cols[3] = {tl + a, tl + n + a, tl + 2 * n + a};
            if (coder_run(&c, t + a, v + a * c.width, cols, len) < 0) break;
        }
        Py_END_ALLOW_THREADS
        result = results(&c);
    } else {
        PyErr_NoMemory();
    }
    coder_free(&c);
    PyBuffer_Release(&times);
    PyBuffer_Release(&values);
    PyBuffer_Release(&tails);
    PyBuffer_Release(&starts);
    return result;
}

/* Releases the buffers of bufs[:count] that were taken (a failed parse
 * leaves the rest empty), then frees the array. */
static void release_all(Py_buffer *bufs, Py_ssize_t count) {
    for (Py_ssize_t i = 0; i < count; i++)
        if (bufs[i].obj) PyBuffer_Release(&bufs[i]);
    PyMem_Free(bufs);
}

#define COLUMNS 7 /* a source: ikeys, starts, times, values, and up to three tails */

/* Source j's columns from its tuple, checked; -1 with an exception set. */
static int source_of(PyObject *item, Py_buffer *buf, Source *s, const Coder *c) {
    memset(buf, 0, COLUMNS * sizeof(Py_buffer));
    if (!PyArg_ParseTuple(item, "y*y*y*y*y*y*|y*", &buf[0], &buf[1], &buf[2], &buf[3], &buf[4],
                          &buf[5], &buf[6]))
        return -1;
    s->ikeys = buf[0].buf;
    s->starts = buf[1].buf;
    s->times = buf[2].buf;
    s->values = buf[3].buf;
    s->runs = buf[0].len / 8;
    s->n = buf[2].len / 8;
    for (int t = 0; t < 3; t++) s->tails[t] = buf[4 + t].buf;
    int ok = buf[1].len == buf[0].len && buf[3].len == s->n * c->width * 8;
    for (int t = 0; t < c->ntails; t++) ok = ok && buf[4 + t].len == s->n;
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "columns of different lengths");
        return -1;
    }
    int ascending = 1;
    for (int64_t g = 1; g < s->runs; g++) ascending = ascending && s->ikeys[g - 1] < s->ikeys[g];
    if (!ascending || !runs_in_order(s->starts, s->runs, s->n)) {
        PyErr_SetString(PyExc_ValueError, "run starts out of order or out of range");
        return -1;
    }
    return 0;
}

static PyObject *merge_segments(PyObject *self, PyObject *args) {
    PyObject *items;
    Py_buffer piece;
    Coder c = {0};
    if (!PyArg_ParseTuple(args, "Oy*iiiiii", &items, &piece, &c.width, &c.ntails, &c.raw_below,
                          &c.version, &c.level, &c.min_summary))
        return NULL;
    PyObject *result = NULL, *seq = PySequence_Fast(items, "sources must be a sequence");
    const Py_ssize_t k = seq ? PySequence_Fast_GET_SIZE(seq) : 0;
    const int64_t points = piece.len / 8;
    const int64_t *pk = piece.buf;
    Py_buffer *bufs = PyMem_Calloc(k * COLUMNS + 1, sizeof(Py_buffer));
    Source *src = PyMem_Calloc(k + 1, sizeof(Source));
    Py_ssize_t parsed = 0;
    int rc = 0;
    if (!seq) goto done;
    if (!bufs || !src) {
        PyErr_NoMemory();
        goto done;
    }
    if (c.width < 1 || c.ntails < 2 || c.ntails > 3 || k > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "a layout out of range");
        goto done;
    }
    for (; parsed < k; parsed++)
        if (source_of(PySequence_Fast_GET_ITEM(seq, parsed), bufs + parsed * COLUMNS, &src[parsed],
                      &c) < 0) {
            parsed++; /* its buffers taken so far are released below */
            goto done;
        }
    for (int64_t p = 1; p < points; p++)
        if (pk[p - 1] >= pk[p]) {
            PyErr_SetString(PyExc_ValueError, "the piece's points are not ascending");
            goto done;
        }
    if (coder_init(&c, points) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    if (points) {
        Py_BEGIN_ALLOW_THREADS
        rc = merge_runs(&c, src, (int)k, pk, points);
        Py_END_ALLOW_THREADS
    }
    if (rc == -2)
        PyErr_SetString(PyExc_ValueError, "a point of the piece has no samples in the sources");
    else
        result = results(&c);
done:
    coder_free(&c);
    release_all(bufs, parsed * COLUMNS);
    PyMem_Free(src);
    Py_XDECREF(seq);
    PyBuffer_Release(&piece);
    return result;
}

#define FRAME_COLUMNS 4 /* a frame: ikeys, values, quality, changes */

static PyObject *seal_segments(PyObject *self, PyObject *args) {
    PyObject *items;
    int width, ntails;
    long long per_segment;
    if (!PyArg_ParseTuple(args, "OiiL", &items, &width, &ntails, &per_segment)) return NULL;
    PyObject *result = NULL, *seq = PySequence_Fast(items, "frames must be a sequence");
    const Py_ssize_t k = seq ? PySequence_Fast_GET_SIZE(seq) : 0;
    Py_buffer *bufs = PyMem_Calloc(k * FRAME_COLUMNS + 1, sizeof(Py_buffer));
    Frame *fr = PyMem_Calloc(k + 1, sizeof(Frame));
    Sealed sealed = {0};
    Py_ssize_t parsed = 0;
    if (!seq) goto done;
    if (!bufs || !fr) {
        PyErr_NoMemory();
        goto done;
    }
    if (width < 1 || ntails < 2 || ntails > 3 || per_segment < 1 || k > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "a layout out of range");
        goto done;
    }
    for (; parsed < k; parsed++) {
        Py_buffer *b = bufs + parsed * FRAME_COLUMNS;
        Frame *f = &fr[parsed];
        long long time;
        unsigned char role;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, parsed), "y*y*y*y*Lb", &b[0], &b[1],
                              &b[2], &b[3], &time, &role))
            goto done;
        f->n = b[0].len / 8;
        f->ikeys = b[0].buf;
        f->values = b[1].buf;
        f->quality = b[2].buf;
        f->changes = b[3].buf;
        f->time = time;
        f->role = role;
        if (b[1].len != f->n * 8 * width || b[2].len != f->n ||
            b[3].len != (ntails == 3 ? f->n : 0)) {
            parsed++;
            PyErr_SetString(PyExc_ValueError, "columns of different lengths");
            goto done;
        }
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = seal_frames(fr, (int)k, width, ntails, per_segment, &sealed);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        PyErr_NoMemory();
        goto done;
    }
    if (!(result = PyList_New(sealed.count))) goto done;
    for (int64_t s = 0, at = 0; s < sealed.count; at = sealed.end[s++]) {
        PyObject *item = Py_BuildValue("(Ly#)", (long long)sealed.first_ikey[s],
                                       (char *)sealed.p + at, (Py_ssize_t)(sealed.end[s] - at));
        if (!item) {
            Py_CLEAR(result);
            break;
        }
        PyList_SET_ITEM(result, s, item);
    }
done:
    sealed_free(&sealed);
    release_all(bufs, parsed * FRAME_COLUMNS);
    PyMem_Free(fr);
    Py_XDECREF(seq);
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
     "encode_runs(times, values, tails, starts, width, ntails, raw_below, version, level,"
     " min_summary) -> (blocks, summaries): one block per run, and its summary or None."},
    {"merge_segments", merge_segments, METH_VARARGS,
     "merge_segments(sources, piece, width, ntails, raw_below, version, level, min_summary)"
     " -> (blocks, summaries): each point's runs in the sources merged into one block."},
    {"seal_segments", seal_segments, METH_VARARGS,
     "seal_segments(frames, width, ntails, runs_per_segment) -> list[(first ikey, segment)]:"
     " one (host, day)'s frames, in arrival order, as segments of runs by point."},
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
              PyModule_AddIntConstant(m, "SUMMARY_HEADER_SIZE", SUMMARY_HEADER_SIZE) ||
              PyModule_AddIntConstant(m, "SUMMARY_ROW_SIZE", SUMMARY_ROW_SIZE) ||
              PyModule_AddIntConstant(m, "HOUR_MS", HOUR_MS) ||
              PyModule_AddIntConstant(m, "ROLE_PRIMARY", ROLE_PRIMARY) ||
              PyModule_AddIntConstant(m, "NO_TIME", NO_TIME) ||
              PyModule_AddIntConstant(m, "SEGMENT_VERSION", SEGMENT_VERSION) ||
              PyModule_AddIntConstant(m, "SEGMENT_HEADER_SIZE", SEGMENT_HEADER_SIZE) ||
              PyModule_AddObject(m, "SEGMENT_MAGIC", PyBytes_FromString(SEGMENT_MAGIC)) ||
              PyModule_AddObject(m, "MAGIC", PyBytes_FromString(MAGIC)))) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
