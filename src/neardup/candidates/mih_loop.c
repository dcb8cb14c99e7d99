/* The multi-index query's inner loop, compiled: for each query code, each chunk, each probe
 * mask, every code of the probed bucket is confirmed by a full popcount.  It is the same loop
 * as MultiIndex._query_block's NumPy passes (mih.py), which stays the reference and the fallback
 * where no compiler was found at install: both yield exactly the pairs within the radius.
 *
 * No NumPy headers: arrays come in through the buffer protocol, so the module builds against
 * Python alone.  The GIL is released for the loop, so a thread pool runs blocks in parallel.
 *
 * search(qcodes, qkeys, chunks, radius, out_q, out_id, out_d, state) -> n
 *   qcodes  uint64[nq]          the query codes
 *   qkeys   int64[m * nq]       each chunk's key of each query, chunk-major
 *   chunks  m tuples (offsets, offset_bytes, codes, ids, id_bytes, masks):
 *           CSR offsets (int32 or int64) over the codes in bucket order (uint64), their ids
 *           (int32 or int64) and the probe masks (int64)
 *   radius  the largest distance kept
 *   out_q   int64[cap]   writable: the query's row in qcodes
 *   out_id  int64[cap]   writable: the indexed code's id
 *   out_d   int16[cap]   writable: the distance
 *   state   int64[4]     writable: where to resume (query, chunk, mask, place in the bucket);
 *                        zeros at first, state[0] == nq once every query is done
 * Returns how many pairs were written (at most cap): a full output stops the loop where it is,
 * so a hub of look-alike codes costs calls, never memory.
 *
 * build(...) makes one chunk's tables, as MultiIndex.__init__ does in NumPy: see below.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* probes whose buckets are looked up together */
#define TILE 256

typedef struct {
    Py_buffer offsets, codes, ids, masks;
    int offset_bytes, id_bytes;
} Chunk;

static inline int64_t read_int(const void *base, int bytes, int64_t i)
{
    return bytes == 4 ? (int64_t)((const int32_t *)base)[i] : ((const int64_t *)base)[i];
}

static void release_chunks(Chunk *chunks, Py_ssize_t m)
{
    for (Py_ssize_t c = 0; c < m; c++) {
        if (chunks[c].offsets.obj) PyBuffer_Release(&chunks[c].offsets);
        if (chunks[c].codes.obj) PyBuffer_Release(&chunks[c].codes);
        if (chunks[c].ids.obj) PyBuffer_Release(&chunks[c].ids);
        if (chunks[c].masks.obj) PyBuffer_Release(&chunks[c].masks);
    }
    PyMem_Free(chunks);
}

/* x86 before 2008 has no popcnt instruction: a copy of the loop is built with it and one
 * without, and the loader picks (GCC's and Clang's target clones, on ELF platforms) */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && defined(__ELF__)
#define POPCNT_CLONES __attribute__((target_clones("popcnt", "default")))
#else
#define POPCNT_CLONES
#endif

#if defined(_MSC_VER)
#include <intrin.h>
#define POPCOUNT64(x) ((int)__popcnt64(x))
#else
#define POPCOUNT64(x) __builtin_popcountll(x)
#endif

#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void)0)
#endif

typedef struct {
    const uint64_t *qcodes;
    const int64_t *qkeys;
    Py_ssize_t nq, m, cap;
    const Chunk *chunks;
    int radius;
    int64_t *out_q, *out_id, *state;
    int16_t *out_d;
} Job;

/* the loop, without the GIL: returns the pairs written, and leaves job->state where to resume */
static POPCNT_CLONES Py_ssize_t run(const Job *job)
{
    const Py_ssize_t nq = job->nq, m = job->m, cap = job->cap;
    int64_t *st = job->state;
    int64_t q = st[0], c0 = st[1], mi0 = st[2], j0 = st[3];
    Py_ssize_t written = 0;
    for (; q < nq; q++, c0 = 0) {
        const uint64_t code = job->qcodes[q];
        for (int64_t c = c0; c < m; c++, mi0 = 0, j0 = 0) {
            const Chunk *k = &job->chunks[c];
            const int64_t *masks = k->masks.buf;
            const int64_t n_masks = k->masks.len / 8;
            const int64_t n_buckets = k->offsets.len / k->offset_bytes - 1;
            const uint64_t *codes = k->codes.buf;
            const int64_t key = job->qkeys[c * nq + q];
            /* a tile of probes at a time: their buckets' bounds are loaded (independent loads,
             * which the CPU overlaps) and their codes prefetched before any is confirmed;
             * probed one by one, each would wait for its own cache miss */
            for (int64_t t0 = mi0; t0 < n_masks; t0 += TILE) {
                const int64_t tn = n_masks - t0 < TILE ? n_masks - t0 : TILE;
                int64_t lo[TILE], hi[TILE];
                for (int64_t t = 0; t < tn; t++) {
                    const int64_t probe = key ^ masks[t0 + t];
                    if (probe < 0 || probe >= n_buckets) {
                        lo[t] = hi[t] = 0;
                        continue;
                    }
                    lo[t] = read_int(k->offsets.buf, k->offset_bytes, probe);
                    hi[t] = read_int(k->offsets.buf, k->offset_bytes, probe + 1);
                }
                for (int64_t t = 0; t < tn; t++)
                    if (hi[t] > lo[t]) PREFETCH(&codes[lo[t]]);
                for (int64_t t = 0; t < tn; t++, j0 = 0) {
                    for (int64_t j = lo[t] + j0; j < hi[t]; j++) {
                        const int d = POPCOUNT64(code ^ codes[j]);
                        if (d > job->radius) continue;
                        if (written == cap) { /* full: resume here next call */
                            st[0] = q; st[1] = c; st[2] = t0 + t; st[3] = j - lo[t];
                            return written;
                        }
                        job->out_q[written] = q;
                        job->out_id[written] = read_int(k->ids.buf, k->id_bytes, j);
                        job->out_d[written] = (int16_t)d;
                        written++;
                    }
                }
            }
        }
    }
    st[0] = nq; st[1] = 0; st[2] = 0; st[3] = 0;
    return written;
}

static PyObject *search(PyObject *self, PyObject *args)
{
    Py_buffer qcodes = {0}, qkeys = {0}, out_q = {0}, out_id = {0}, out_d = {0}, state = {0};
    PyObject *chunk_list;
    int radius;
    Chunk *chunks = NULL;
    Py_ssize_t m = 0, written = 0;
    PyObject *result = NULL;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*O!iw*w*w*w*", &qcodes, &qkeys, &PyTuple_Type, &chunk_list, &radius, &out_q,
                          &out_id, &out_d, &state))
        return NULL;
    m = PyTuple_GET_SIZE(chunk_list);
    const Py_ssize_t nq = qcodes.len / 8, cap = out_q.len / 8;
    if (m < 1 || qkeys.len != 8 * m * nq || out_id.len / 8 < cap || out_d.len / 2 < cap || state.len != 32) {
        PyErr_SetString(PyExc_ValueError, "search: arrays of mismatched sizes");
        goto done;
    }
    chunks = PyMem_Calloc((size_t)m, sizeof(Chunk));
    if (!chunks) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t c = 0; c < m; c++) {
        Chunk *k = &chunks[c];
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(chunk_list, c), "y*iy*y*iy*", &k->offsets, &k->offset_bytes, &k->codes,
                              &k->ids, &k->id_bytes, &k->masks))
            goto done;
        if ((k->offset_bytes != 4 && k->offset_bytes != 8) || (k->id_bytes != 4 && k->id_bytes != 8)
            || k->ids.len / k->id_bytes != k->codes.len / 8 || k->offsets.len < 2 * k->offset_bytes) {
            PyErr_SetString(PyExc_ValueError, "search: a chunk's arrays are of mismatched sizes or widths");
            goto done;
        }
    }
    {
        const Job job = {qcodes.buf, qkeys.buf, nq, m, cap, chunks, radius,
                         out_q.buf, out_id.buf, state.buf, out_d.buf};
        Py_BEGIN_ALLOW_THREADS
        written = run(&job);
        Py_END_ALLOW_THREADS
    }
    result = PyLong_FromSsize_t(written);
done:
    if (chunks) release_chunks(chunks, m);
    PyBuffer_Release(&qcodes);
    PyBuffer_Release(&qkeys);
    PyBuffer_Release(&out_q);
    PyBuffer_Release(&out_id);
    PyBuffer_Release(&out_d);
    PyBuffer_Release(&state);
    return result;
}

/* build(codes, table, ids, offsets, nonempty, out_ids, out_codes): one chunk's tables, the
 * NumPy construction of MultiIndex.__init__ (mih.py) as a counting sort.
 *   codes     uint64[n]            the indexed codes
 *   table     uint32[8 * 256]      the chunk's interleave table: byte j of value v puts table[256 j + v] in the key
 *   ids       int64[n]             the id of each code
 *   offsets   int32 or int64[2**w + 1]  writable: CSR offsets of the buckets (w: the key's width)
 *   nonempty  uint8[2**w]          writable: whether each bucket holds a code
 *   out_ids   int32 or int64[n]    writable: the ids in bucket order
 *   out_codes uint64[n]            writable: the codes in bucket order
 * Codes keep their order inside a bucket (a stable sort, as NumPy's), so both give the same tables.
 */
static inline uint32_t chunk_key(const uint32_t *table, uint64_t code)
{
    uint32_t key = 0;
    for (int j = 0; j < 8; j++) key |= table[256 * j + ((code >> (8 * j)) & 0xFF)];
    return key;
}

static PyObject *build(PyObject *self, PyObject *args)
{
    Py_buffer codes = {0}, table = {0}, ids = {0}, offsets = {0}, nonempty = {0}, out_ids = {0}, out_codes = {0};
    int offset_bytes, id_bytes;
    PyObject *result = NULL;
    int64_t *cursor = NULL;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*y*w*iw*w*iw*", &codes, &table, &ids, &offsets, &offset_bytes, &nonempty, &out_ids,
                          &id_bytes, &out_codes))
        return NULL;
    const Py_ssize_t n = codes.len / 8;
    const Py_ssize_t buckets = nonempty.len;
    if (table.len != 4 * 8 * 256 || ids.len != 8 * n || out_codes.len != 8 * n || (offset_bytes != 4 && offset_bytes != 8)
        || (id_bytes != 4 && id_bytes != 8) || out_ids.len != id_bytes * n || offsets.len != offset_bytes * (buckets + 1)
        || buckets < 1 || (buckets & (buckets - 1))) {
        PyErr_SetString(PyExc_ValueError, "build: arrays of mismatched sizes or widths");
        goto done;
    }
    const uint32_t *tab = table.buf;
    for (Py_ssize_t k = 0; k < 8 * 256; k++) {
        if (tab[k] >= (uint64_t)buckets) {
            PyErr_SetString(PyExc_ValueError, "build: the table makes keys wider than the buckets");
            goto done;
        }
    }
    cursor = PyMem_Calloc((size_t)buckets + 1, sizeof(int64_t));
    if (!cursor) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    const uint64_t *code = codes.buf;
    const int64_t *id = ids.buf;
    for (Py_ssize_t i = 0; i < n; i++) cursor[chunk_key(tab, code[i]) + 1]++;
    uint8_t *filled = nonempty.buf;
    for (Py_ssize_t b = 0; b < buckets; b++) {
        filled[b] = cursor[b + 1] != 0;
        cursor[b + 1] += cursor[b];
    }
    if (offset_bytes == 4)
        for (Py_ssize_t b = 0; b <= buckets; b++) ((int32_t *)offsets.buf)[b] = (int32_t)cursor[b];
    else
        memcpy(offsets.buf, cursor, (size_t)(buckets + 1) * sizeof(int64_t));
    uint64_t *sorted_codes = out_codes.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t at = cursor[chunk_key(tab, code[i])]++;
        sorted_codes[at] = code[i];
        if (id_bytes == 4) ((int32_t *)out_ids.buf)[at] = (int32_t)id[i];
        else ((int64_t *)out_ids.buf)[at] = id[i];
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyMem_Free(cursor);
    PyBuffer_Release(&codes);
    PyBuffer_Release(&table);
    PyBuffer_Release(&ids);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&nonempty);
    PyBuffer_Release(&out_ids);
    PyBuffer_Release(&out_codes);
    return result;
}

static PyMethodDef methods[] = {
    {"search", search, METH_VARARGS, "Every (query, indexed) pair within the radius: see the module's source."},
    {"build", build, METH_VARARGS, "One chunk's bucket tables, by a counting sort: see the module's source."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "mih_loop", "The multi-index query's inner loop.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_mih_loop(void) { return PyModule_Create(&module); }
