/*
 * A compiled check of Avro records against a flat record schema, finding a
 * few fields in each: an integer's value, or where a string's or bytes'
 * content starts and ends.
 *
 * A ring server applies every record its partitions hold, and needs only a
 * few fields of each: three integers of a point's metadata, a scan frame's
 * header and where its columns lie. Decoding each record into a dict costs
 * more than the rest of what the server does with a metadata record, and
 * copies a frame's columns. scan() checks a whole batch in one call,
 * without the GIL, and builds no Python object per record.
 *
 * It is stricter than a full decoder, never looser: a record it accepts
 * decodes, and gives the same integers. It refuses what a decoder might
 * read some other way (a varint longer than 64 bits, a negative enum index,
 * a boolean byte other than 0 or 1) as well as what no decoder reads; its
 * caller asks the full decoder about each refused record, so the verdict
 * on a record is the decoder's. The program comes from the schema file
 * (pegasus_kafka/schema.py compiles it), never from here.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum { OP_LONG = 1, OP_INT, OP_FLOAT, OP_DOUBLE, OP_BOOLEAN, OP_STRING, OP_BYTES,
       OP_ENUM, OP_NULL, OP_FIXED };

enum { OK = 0, NOT_BYTES, TRUNCATED, BAD_VARINT, BAD_ENUM, BAD_UTF8, BAD_LENGTH, TRAILING,
       BAD_BOOLEAN };

/* op (1 byte), output slot (1 byte, 255: none), argument (4 bytes LE). A
 * string, bytes or fixed field fills two slots: its content's start and end. */
#define STEP 6
#define NO_SLOT 255

/* One zigzag varint of at most 64 bits. */
static int read_long(const uint8_t **p, const uint8_t *end, int64_t *out) {
    uint64_t n = 0;
    int shift = 0;
    for (int i = 0; i < 10; i++) {
        if (*p >= end) return TRUNCATED;
        uint8_t b = *(*p)++;
        if (i == 9 && b > 1) return BAD_VARINT;
        n |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)(n >> 1) ^ -(int64_t)(n & 1);
            return OK;
        }
        shift += 7;
    }
    return BAD_VARINT;
}

/* Strict UTF-8, as Python decodes it: no overlong forms, no surrogates,
 * nothing above U+10FFFF. */
static int valid_utf8(const uint8_t *s, int64_t n) {
    int64_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int more;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            more = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            return 0;
        }
        if (n - i - 1 < more) return 0;
        if (s[i + 1] < lo || s[i + 1] > hi) return 0;
        for (int k = 2; k <= more; k++)
            if ((s[i + k] & 0xC0) != 0x80) return 0;
        i += more + 1;
    }
    return 1;
}

static int is_span(uint8_t op) { return op == OP_STRING || op == OP_BYTES || op == OP_FIXED; }

static int check(const uint8_t *prog, Py_ssize_t steps, const uint8_t *begin, const uint8_t *end,
                 int64_t *out) {
    const uint8_t *p = begin;
    for (Py_ssize_t s = 0; s < steps; s++) {
        const uint8_t *step = prog + s * STEP;
        uint8_t op = step[0], slot = step[1];
        uint32_t arg = (uint32_t)step[2] | (uint32_t)step[3] << 8 | (uint32_t)step[4] << 16 |
                       (uint32_t)step[5] << 24;
        int64_t v = 0;
        int rc = OK;
        switch (op) {
        case OP_LONG:
        case OP_INT:
            rc = read_long(&p, end, &v);
            break;
        case OP_ENUM:
            rc = read_long(&p, end, &v);
            if (rc == OK && (v < 0 || v >= (int64_t)arg)) rc = BAD_ENUM;
            break;
        case OP_BOOLEAN:
            if (p >= end) return TRUNCATED;
            v = *p++;
            if (v > 1) rc = BAD_BOOLEAN;
            break;
        case OP_FLOAT:
        case OP_DOUBLE:
        case OP_FIXED: {
            int64_t size = op == OP_FLOAT ? 4 : op == OP_DOUBLE ? 8 : (int64_t)arg;
            if (end - p < size) return TRUNCATED;
            v = p - begin;
            if (op == OP_FIXED && slot != NO_SLOT) out[slot + 1] = v + size;
            p += size;
            break;
        }
        case OP_STRING:
        case OP_BYTES: {
            int64_t size;
            rc = read_long(&p, end, &size);
            if (rc != OK) return rc;
            if (size < 0) return BAD_LENGTH;
            if (end - p < size) return TRUNCATED;
            if (op == OP_STRING && !valid_utf8(p, size)) return BAD_UTF8;
            v = p - begin;
            if (slot != NO_SLOT) out[slot + 1] = v + size;
            p += size;
            break;
        }
        case OP_NULL:
            break;
        default:
            return BAD_VARINT; /* refused by the caller before this point */
        }
        if (rc != OK) return rc;
        if (slot != NO_SLOT) out[slot] = v;
    }
    return p == end ? OK : TRAILING;
}

static PyObject *scan(PyObject *self, PyObject *args) {
    Py_buffer prog;
    int nout;
    PyObject *values;
    if (!PyArg_ParseTuple(args, "y*iO!", &prog, &nout, &PyList_Type, &values)) return NULL;
    Py_ssize_t steps = prog.len / STEP;
    const uint8_t *code = prog.buf;
    int bad = prog.len % STEP != 0 || nout < 0 || nout > NO_SLOT;
    for (Py_ssize_t s = 0; !bad && s < steps; s++) {
        uint8_t op = code[s * STEP], slot = code[s * STEP + 1];
        bad = op < OP_LONG || op > OP_FIXED ||
              (slot != NO_SLOT && slot + is_span(op) >= nout);
    }
    if (bad) {
        PyBuffer_Release(&prog);
        PyErr_SetString(PyExc_ValueError, "not a scan program");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(values);
    PyObject *status = PyBytes_FromStringAndSize(NULL, n);
    PyObject *fields = PyBytes_FromStringAndSize(NULL, n * nout * (Py_ssize_t)sizeof(int64_t));
    PyObject **held = PyMem_Calloc(n ? n : 1, sizeof(PyObject *));
    if (!status || !fields || !held) {
        Py_XDECREF(status);
        Py_XDECREF(fields);
        PyMem_Free(held);
        PyBuffer_Release(&prog);
        return PyErr_NoMemory();
    }
    uint8_t *st = (uint8_t *)PyBytes_AS_STRING(status);
    int64_t *out = (int64_t *)PyBytes_AS_STRING(fields);
    memset(out, 0, n * nout * sizeof(int64_t));
    /* Each value is held by a reference of its own while the GIL is let go. */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyList_GET_ITEM(values, i);
        if (PyBytes_Check(v) && PyBytes_GET_SIZE(v) > 0) {
            Py_INCREF(v);
            held[i] = v;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!held[i]) {
            st[i] = NOT_BYTES;
            continue;
        }
        const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(held[i]);
        st[i] = (uint8_t)check(code, steps, p, p + PyBytes_GET_SIZE(held[i]), out + i * nout);
    }
    Py_END_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) Py_XDECREF(held[i]);
    PyMem_Free(held);
    PyBuffer_Release(&prog);
    return Py_BuildValue("(NN)", status, fields);
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(program, nout, values) -> (status, fields): check each value against a compiled "
     "record schema; status 0 where it holds, with its nout slots (int64, native order) in "
     "fields."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_avro", NULL, -1, methods};

PyMODINIT_FUNC PyInit__avro(void) {
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    static const struct { const char *name; long value; } constants[] = {
        {"OP_LONG", OP_LONG},   {"OP_INT", OP_INT},         {"OP_FLOAT", OP_FLOAT},
        {"OP_DOUBLE", OP_DOUBLE}, {"OP_BOOLEAN", OP_BOOLEAN}, {"OP_STRING", OP_STRING},
        {"OP_BYTES", OP_BYTES}, {"OP_ENUM", OP_ENUM},       {"OP_NULL", OP_NULL},
        {"OP_FIXED", OP_FIXED}, {"NO_SLOT", NO_SLOT},
    };
    for (size_t i = 0; i < sizeof(constants) / sizeof(constants[0]); i++) {
        if (PyModule_AddIntConstant(m, constants[i].name, constants[i].value) < 0) {
            Py_DECREF(m);
            return NULL;
        }
    }
    return m;
}
