/* The ELF header reader of bindrift: the file header, program headers and section headers as written.
 *
 * Compiled because it runs on every file of a scan (bench/run.py: parsing the tables in Python took half
 * of the per-file triage cost). Tolerant and bounded: every count, offset and size comes from the file and
 * is checked (sums and products with overflow detection, an overflowed value reading as "past the end"),
 * the program header table is read up to 64 KiB and the section table up to 65,536 entries, and nothing
 * raises on malformed input: what could not be read is named in `problems`.
 *
 * Bytes come from the ByteSource given (`src.read(offset, length)`), its first bytes (reader.HEAD_SIZE)
 * handed in by the caller. Program headers become `Phdr` tuples; the section table stays raw in a `SectionTable`
 * whose queries (B16 consistency, code sections around an address, ...) run here, so the ~30 sections of
 * an ordinary file never become Python objects.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

/* The kernel refuses program header tables over 64 KiB; read no more than that. */
#define MAX_PHT_BYTES 65536
/* Sections beyond this are not parsed (real binaries have < 100; the limit bounds memory). */
#define MAX_SECTIONS 65536
/* Read the section table and the rest of the file together when at most this much follows the table. */
#define TAIL_SLACK 4096
#define PN_XNUM 0xFFFF
#define SHN_XINDEX 0xFFFF

#define SHT_SYMTAB 2
#define SHT_STRTAB 3
#define SHT_RELA 4
#define SHT_HASH 5
#define SHT_DYNAMIC 6
#define SHT_NOTE 7
#define SHT_NOBITS 8
#define SHT_REL 9
#define SHT_DYNSYM 11
#define SHT_INIT_ARRAY 14
#define SHT_FINI_ARRAY 15
#define SHT_PREINIT_ARRAY 16
#define SHT_GNU_HASH 0x6FFFFFF6u
#define SHT_GNU_VERDEF 0x6FFFFFFDu
#define SHT_GNU_VERNEED 0x6FFFFFFEu
#define SHT_GNU_VERSYM 0x6FFFFFFFu
#define SHF_ALLOC 0x2
#define SHF_EXECINSTR 0x4
#define SHF_INFO_LINK 0x40

static PyTypeObject *phdr_type; /* reader.Phdr / reader.Shdr, bound once by `bind` */
static PyTypeObject *shdr_type;
static PyObject *str_read, *str_size;
/* The section-table inconsistencies (B16), in the order they are tested on each section. */
enum { BEYOND_EOF, LINK_OUT_OF_RANGE, LINK_WRONG_TYPE, INFO_OUT_OF_RANGE, UNEXPECTED_INFO, BAD_ENTSIZE,
       N_SECTION_PROBLEMS };
/* How many offending sections a finding names. */
#define MAX_LISTED 3
static const char *const section_problem_names[N_SECTION_PROBLEMS] = {
    "section_beyond_eof", "section_link_out_of_range", "section_link_wrong_type",
    "section_info_out_of_range", "section_unexpected_info", "section_bad_entsize",
};

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define HOST_LITTLE 0
#else
#define HOST_LITTLE 1
#endif

/* The n-byte (2, 4 or 8) unsigned field at p in the file's byte order. */
static inline uint64_t rd(const uint8_t *p, int n, int little) {
    int swap = little != HOST_LITTLE;
    if (n == 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        return swap ? __builtin_bswap64(v) : v;
    }
    if (n == 4) {
        uint32_t v;
        memcpy(&v, p, 4);
        return swap ? __builtin_bswap32(v) : v;
    }
    uint16_t v;
    memcpy(&v, p, 2);
    return swap ? __builtin_bswap16(v) : v;
}

/* a + b, or UINT64_MAX when the sum does not fit (then it lies past any file). */
static uint64_t add_sat(uint64_t a, uint64_t b) {
    uint64_t r;
    return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t mul_sat(uint64_t a, uint64_t b) {
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

/* start <= x < start + len, with an overflowing end counting as unbounded (as Python's integers do). */
static int within(uint64_t x, uint64_t start, uint64_t len) {
    uint64_t end;
    if (x < start)
        return 0;
    return __builtin_add_overflow(start, len, &end) ? 1 : x < end;
}

/* ---------- SectionTable ---------- */

typedef struct {
    uint64_t name, type, flags, addr, offset, size, link, info, addralign, entsize;
} Shdr;

typedef struct {
    PyObject_HEAD
    PyObject *data; /* bytes: count rows as written */
    Py_ssize_t count;
    int wide;
    int little;
} SectionTable;

static void decode_shdr(const uint8_t *p, int wide, int le, Shdr *s) {
    if (wide) {
        s->name = rd(p, 4, le); s->type = rd(p + 4, 4, le); s->flags = rd(p + 8, 8, le);
        s->addr = rd(p + 16, 8, le); s->offset = rd(p + 24, 8, le); s->size = rd(p + 32, 8, le);
        s->link = rd(p + 40, 4, le); s->info = rd(p + 44, 4, le); s->addralign = rd(p + 48, 8, le);
        s->entsize = rd(p + 56, 8, le);
    } else {
        s->name = rd(p, 4, le); s->type = rd(p + 4, 4, le); s->flags = rd(p + 8, 4, le);
        s->addr = rd(p + 12, 4, le); s->offset = rd(p + 16, 4, le); s->size = rd(p + 20, 4, le);
        s->link = rd(p + 24, 4, le); s->info = rd(p + 28, 4, le); s->addralign = rd(p + 32, 4, le);
        s->entsize = rd(p + 36, 4, le);
    }
}

static void shdr_at(const SectionTable *t, Py_ssize_t i, Shdr *s) {
    const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(t->data);
    decode_shdr(p + i * (t->wide ? 64 : 40), t->wide, t->little, s);
}

static PyObject *new_row(PyTypeObject *type, const uint64_t *values, Py_ssize_t n) {
    PyObject *row = type->tp_alloc(type, n);
    if (row == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(values[i]);
        if (v == NULL) {
            Py_DECREF(row);
            return NULL;
        }
        PyTuple_SET_ITEM(row, i, v);
    }
    return row;
}

static Py_ssize_t sections_len(PyObject *self) { return ((SectionTable *)self)->count; }

static PyObject *sections_item(PyObject *self, Py_ssize_t i) {
    SectionTable *t = (SectionTable *)self;
    if (i < 0 || i >= t->count) {
        PyErr_SetString(PyExc_IndexError, "section index out of range");
        return NULL;
    }
    Shdr s;
    shdr_at(t, i, &s);
    uint64_t v[10] = {s.name, s.type, s.flags, s.addr, s.offset, s.size, s.link, s.info, s.addralign, s.entsize};
    return new_row(shdr_type, v, 10);
}

static int link_allowed(uint64_t type, uint64_t target, int *known, int *zero_ok) {
    *known = 1;
    *zero_ok = 0;
    switch (type) {
    case SHT_SYMTAB: case SHT_DYNSYM: case SHT_DYNAMIC: case SHT_GNU_VERDEF: case SHT_GNU_VERNEED:
        return target == SHT_STRTAB;
    case SHT_REL: case SHT_RELA:
        *zero_ok = 1;
        return target == SHT_SYMTAB || target == SHT_DYNSYM;
    case SHT_HASH:
        return target == SHT_SYMTAB || target == SHT_DYNSYM;
    case SHT_GNU_HASH: case SHT_GNU_VERSYM:
        return target == SHT_DYNSYM;
    default:
        *known = 0;
        return 1;
    }
}

static int no_info_type(uint64_t type) {
    return type == 1 || type == SHT_STRTAB || type == SHT_NOTE || type == SHT_INIT_ARRAY ||
           type == SHT_FINI_ARRAY || type == SHT_PREINIT_ARRAY;
}

/* The entry size a section type's entries have (0: the type has no fixed entries). */
static uint64_t type_entsize(uint64_t type, int wide) {
    switch (type) {
    case SHT_SYMTAB: case SHT_DYNSYM: return wide ? 24 : 16;
    case SHT_RELA: return wide ? 24 : 12;
    case SHT_REL: return wide ? 16 : 8;
    case SHT_DYNAMIC: return wide ? 16 : 8;
    default: return 0;
    }
}

/* B16 over the raw table: per kind of inconsistency, how many sections show it and which come first. */
typedef struct {
    Py_ssize_t count[N_SECTION_PROBLEMS], first[N_SECTION_PROBLEMS][MAX_LISTED];
} SectionProblems;

static void section_problems(const SectionTable *t, uint64_t file_size, SectionProblems *out) {
    memset(out, 0, sizeof *out);
    uint64_t n = (uint64_t)t->count;
    for (Py_ssize_t i = 1; i < t->count; i++) { /* section 0 carries the extended-numbering escapes */
        Shdr s;
        shdr_at(t, i, &s);
        int found[N_SECTION_PROBLEMS] = {0};
        found[BEYOND_EOF] = s.size && add_sat(s.offset, s.size) > file_size && s.type != SHT_NOBITS;
        if (s.link >= n) {
            found[LINK_OUT_OF_RANGE] = 1;
        } else {
            Shdr target;
            shdr_at(t, (Py_ssize_t)s.link, &target);
            int known, zero_ok;
            int ok = link_allowed(s.type, target.type, &known, &zero_ok);
            /* A NOBITS target is a section whose bytes were stripped into a debug file, not a wrong link. */
            found[LINK_WRONG_TYPE] = known && !ok && target.type != SHT_NOBITS && !(zero_ok && s.link == 0);
        }
        if (s.info) {
            if (s.info >= n && ((s.flags & SHF_INFO_LINK) || s.type == SHT_REL || s.type == SHT_RELA))
                found[INFO_OUT_OF_RANGE] = 1;
            else
                found[UNEXPECTED_INFO] = no_info_type(s.type) && !(s.flags & SHF_INFO_LINK);
        }
        uint64_t want = type_entsize(s.type, t->wide);
        found[BAD_ENTSIZE] = want && s.size && s.entsize != want;
        for (int k = 0; k < N_SECTION_PROBLEMS; k++)
            if (found[k] && out->count[k]++ < MAX_LISTED)
                out->first[k][out->count[k] - 1] = i;
    }
}

static int arg_u64(PyObject *arg, uint64_t *out) {
    *out = PyLong_AsUnsignedLongLong(arg);
    return *out == (uint64_t)-1 && PyErr_Occurred() ? -1 : 0;
}

/* How many SHF_EXECINSTR | SHF_ALLOC sections there are (NOBITS ones left out with skip_nobits), and
 * whether one of them holds the address. */
static Py_ssize_t code_sections(const SectionTable *t, uint64_t address, int skip_nobits, int *inside) {
    Py_ssize_t count = 0;
    *inside = 0;
    for (Py_ssize_t i = 0; i < t->count; i++) {
        Shdr s;
        shdr_at(t, i, &s);
        if (!(s.flags & SHF_EXECINSTR) || !(s.flags & SHF_ALLOC) || (skip_nobits && s.type == SHT_NOBITS))
            continue;
        count++;
        *inside |= within(address, s.addr, s.size);
    }
    return count;
}

static PyObject *sections_code_sections(PyObject *self, PyObject *args) {
    unsigned long long address;
    int skip_nobits, inside;
    if (!PyArg_ParseTuple(args, "Kp", &address, &skip_nobits))
        return NULL;
    Py_ssize_t count = code_sections((SectionTable *)self, address, skip_nobits, &inside);
    return Py_BuildValue("(nO)", count, inside ? Py_True : Py_False);
}

typedef int (*SectionMatch)(const Shdr *s, uint64_t value);

static int nobits_covers(const Shdr *s, uint64_t address) {
    return s->type == SHT_NOBITS && within(address, s->addr, s->size);
}

static int has_type(const Shdr *s, uint64_t type) { return s->type == type; }

static int sized_at(const Shdr *s, uint64_t address) { return s->addr == address && s->size; }

/* Whether any section matches `arg` (an unsigned integer) by `match`. */
static PyObject *any_section(PyObject *self, PyObject *arg, SectionMatch match) {
    SectionTable *t = (SectionTable *)self;
    uint64_t value;
    if (arg_u64(arg, &value) < 0)
        return NULL;
    for (Py_ssize_t i = 0; i < t->count; i++) {
        Shdr s;
        shdr_at(t, i, &s);
        if (match(&s, value))
            Py_RETURN_TRUE;
    }
    Py_RETURN_FALSE;
}

static PyObject *sections_nobits_cover(PyObject *self, PyObject *arg) { return any_section(self, arg, nobits_covers); }

static PyObject *sections_has_type(PyObject *self, PyObject *arg) { return any_section(self, arg, has_type); }

static PyObject *sections_sized_at(PyObject *self, PyObject *arg) { return any_section(self, arg, sized_at); }

static PyMethodDef sections_methods[] = {
    {"code_sections", sections_code_sections, METH_VARARGS,
     "(number of SHF_EXECINSTR|SHF_ALLOC sections, whether one holds the address); skip_nobits leaves out "
     "SHT_NOBITS ones."},
    {"nobits_cover", sections_nobits_cover, METH_O, "Whether an SHT_NOBITS section spans the address."},
    {"has_type", sections_has_type, METH_O, "Whether a section has this sh_type."},
    {"sized_at", sections_sized_at, METH_O, "Whether a section of non-zero size starts at the address."},
    {NULL, NULL, 0, NULL},
};

static void sections_dealloc(PyObject *self) {
    Py_XDECREF(((SectionTable *)self)->data);
    Py_TYPE(self)->tp_free(self);
}

static PySequenceMethods sections_as_sequence = {
    .sq_length = sections_len,
    .sq_item = sections_item,
};

static PyTypeObject SectionTableType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "bindrift.analysis.elf._native.SectionTable",
    .tp_doc = "The section headers of one file as written; indexing gives a reader.Shdr.",
    .tp_basicsize = sizeof(SectionTable),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = sections_dealloc,
    .tp_as_sequence = &sections_as_sequence,
    .tp_methods = sections_methods,
};

static SectionTable *sections_new(PyObject *data, Py_ssize_t count, int wide, int little) {
    SectionTable *t = PyObject_New(SectionTable, &SectionTableType);
    if (t == NULL)
        return NULL;
    Py_XINCREF(data);
    t->data = data;
    t->count = count;
    t->wide = wide;
    t->little = little;
    return t;
}

/* ---------- ElfImage ---------- */

typedef struct {
    PyObject_HEAD
    PyObject *src, *head, *phdrs, *loads, *shdrs, *problems, *tail;
    PyObject *phdr_data; /* bytes: the program headers read, as written (NULL when none) */
    unsigned long long size, entry, phoff, shoff, tail_offset, phnum_eff, shnum_eff, shstrndx_eff;
    unsigned int bits, ei_class, ei_data, ei_version, osabi, abiversion, type, machine, version, flags;
    unsigned int ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
    char little, layout_inferred;
} Image;

static PyObject *call_read(PyObject *src, uint64_t offset, uint64_t length) {
    PyObject *o = PyLong_FromUnsignedLongLong(offset), *l = PyLong_FromUnsignedLongLong(length);
    PyObject *data = (o && l) ? PyObject_CallMethodObjArgs(src, str_read, o, l, NULL) : NULL;
    Py_XDECREF(o);
    Py_XDECREF(l);
    if (data != NULL && !PyBytes_Check(data)) {
        Py_DECREF(data);
        PyErr_SetString(PyExc_TypeError, "ByteSource.read must return bytes");
        return NULL;
    }
    return data;
}

/* `length` bytes at `offset`: sliced from the head when it holds them, else read from the source. */
static PyObject *read_table(Image *e, uint64_t offset, uint64_t length) {
    if (add_sat(offset, length) <= (uint64_t)PyBytes_GET_SIZE(e->head))
        return PyBytes_FromStringAndSize(PyBytes_AS_STRING(e->head) + offset, (Py_ssize_t)length);
    return call_read(e->src, offset, length);
}

static PyObject *image_read_u64(Image *e, uint64_t offset, uint64_t length) {
    Py_ssize_t tail_len = e->tail ? PyBytes_GET_SIZE(e->tail) : 0;
    if (tail_len && offset >= e->tail_offset && add_sat(offset, length) <= e->tail_offset + (uint64_t)tail_len) {
        uint64_t start = offset - e->tail_offset;
        return PyBytes_FromStringAndSize(PyBytes_AS_STRING(e->tail) + start, (Py_ssize_t)length);
    }
    return read_table(e, offset, length);
}

static PyObject *image_read(PyObject *self, PyObject *args) {
    PyObject *off_obj, *len_obj;
    if (!PyArg_ParseTuple(args, "OO", &off_obj, &len_obj))
        return NULL;
    uint64_t offset = PyLong_AsUnsignedLongLong(off_obj);
    uint64_t length = PyErr_Occurred() ? 0 : PyLong_AsUnsignedLongLong(len_obj);
    if (PyErr_Occurred()) { /* negative or beyond 64 bits: the source answers (empty or short) */
        PyErr_Clear();
        return PyObject_CallMethodObjArgs(((Image *)self)->src, str_read, off_obj, len_obj, NULL);
    }
    return image_read_u64((Image *)self, offset, length);
}

static int problem(Image *e, const char *what) {
    PyObject *s = PyUnicode_InternFromString(what);
    if (s == NULL)
        return -1;
    int rc = PyList_Append(e->problems, s);
    Py_DECREF(s);
    return rc;
}

static void image_dealloc(PyObject *self) {
    Image *e = (Image *)self;
    Py_XDECREF(e->src);
    Py_XDECREF(e->head);
    Py_XDECREF(e->phdrs);
    Py_XDECREF(e->loads);
    Py_XDECREF(e->shdrs);
    Py_XDECREF(e->problems);
    Py_XDECREF(e->tail);
    Py_XDECREF(e->phdr_data);
    Py_TYPE(self)->tp_free(self);
}

#define M(name, kind) {#name, kind, offsetof(Image, name), READONLY, NULL}
static PyMemberDef image_members[] = {
    M(src, T_OBJECT_EX), M(head, T_OBJECT_EX), M(phdrs, T_OBJECT_EX), M(loads, T_OBJECT_EX), M(shdrs, T_OBJECT_EX),
    M(problems, T_OBJECT_EX), M(tail, T_OBJECT_EX),
    M(size, T_ULONGLONG), M(entry, T_ULONGLONG), M(phoff, T_ULONGLONG), M(shoff, T_ULONGLONG),
    M(tail_offset, T_ULONGLONG), M(phnum_eff, T_ULONGLONG), M(shnum_eff, T_ULONGLONG),
    M(shstrndx_eff, T_ULONGLONG),
    M(bits, T_UINT), M(ei_class, T_UINT), M(ei_data, T_UINT), M(ei_version, T_UINT), M(osabi, T_UINT),
    M(abiversion, T_UINT), M(type, T_UINT), M(machine, T_UINT), M(version, T_UINT), M(flags, T_UINT),
    M(ehsize, T_UINT), M(phentsize, T_UINT), M(phnum, T_UINT), M(shentsize, T_UINT), M(shnum, T_UINT),
    M(shstrndx, T_UINT), M(little, T_BOOL), M(layout_inferred, T_BOOL),
    {NULL, 0, 0, 0, NULL},
};
#undef M

static PyObject *image_header_hits(PyObject *self, PyObject *arg);
static PyObject *image_packer_probe(PyObject *self, PyObject *unused);
static PyObject *image_linkage(PyObject *self, PyObject *unused);

static PyMethodDef image_methods[] = {
    {"header_hits", image_header_hits, METH_O,
     "header_hits(executable) -> the header checks that fired: condition id → the indices and counts it names."},
    {"linkage", image_linkage, METH_NOARGS,
     "(PT_INTERP paths as raw bytes, whether the file links dynamically; a static-pie executable does not)."},
    {"packer_probe", image_packer_probe, METH_NOARGS,
     "What decides the packer checks' deeper look (see analysis/packing/checks.py), or None when nothing does."},
    {"read", image_read, METH_VARARGS,
     "Up to `length` bytes at `offset`, sliced from the head or tail already read when they hold them."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ImageType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "bindrift.analysis.elf._native.ElfImage",
    .tp_doc = "The raw headers of one ELF file, with the layout (class, byte order) used to read them.",
    .tp_basicsize = sizeof(Image),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = image_dealloc,
    .tp_members = image_members,
    .tp_methods = image_methods,
};

/* ---------- Program header checks (conditions here, messages in header_checks.py / segment_checks.py) ---------- */

#define PT_LOAD 1
#define PT_DYNAMIC 2
#define PT_PHDR 6
#define PF_X 1
#define PF_W 2
#define PF_R 4
#define ET_EXEC 2
#define ET_DYN 3
#define ET_CORE 4
#define PT_INTERP 3
#define EM_ARM 40
#define EM_PPC64 21

typedef struct {
    uint64_t type, flags, offset, vaddr, paddr, filesz, memsz, align;
    Py_ssize_t index; /* in the program header table */
} Phdr;

static Py_ssize_t phdr_count(const Image *e) {
    return e->phdr_data ? PyBytes_GET_SIZE(e->phdr_data) / (e->bits == 64 ? 56 : 32) : 0;
}

static void phdr_at(const Image *e, Py_ssize_t i, Phdr *p) {
    const uint8_t *r = (const uint8_t *)PyBytes_AS_STRING(e->phdr_data);
    int le = e->little;
    p->index = i;
    if (e->bits == 64) {
        r += i * 56;
        p->type = rd(r, 4, le); p->flags = rd(r + 4, 4, le); p->offset = rd(r + 8, 8, le);
        p->vaddr = rd(r + 16, 8, le); p->paddr = rd(r + 24, 8, le); p->filesz = rd(r + 32, 8, le);
        p->memsz = rd(r + 40, 8, le); p->align = rd(r + 48, 8, le);
    } else {
        r += i * 32;
        p->type = rd(r, 4, le); p->offset = rd(r + 4, 4, le); p->vaddr = rd(r + 8, 4, le);
        p->paddr = rd(r + 12, 4, le); p->filesz = rd(r + 16, 4, le); p->memsz = rd(r + 20, 4, le);
        p->flags = rd(r + 24, 4, le); p->align = rd(r + 28, 4, le);
    }
}

/* A 65-bit end (start + size): the carry and the low 64 bits, compared as Python integers compare. */
typedef struct {
    int carry;
    uint64_t low;
} End;

static End end_of(uint64_t start, uint64_t size) {
    End x;
    x.carry = __builtin_add_overflow(start, size, &x.low);
    return x;
}

static int end_le(End a, End b) { return a.carry != b.carry ? a.carry < b.carry : a.low <= b.low; }
static int below_end(uint64_t x, End end) { return end.carry || x < end.low; }

typedef struct {
    uint64_t start;
    End end;
    Py_ssize_t load; /* index among the PT_LOADs */
} Range;

static int range_cmp(const void *pa, const void *pb) { /* as Python sorts (start, end, index) tuples */
    const Range *a = pa, *b = pb;
    if (a->start != b->start)
        return a->start < b->start ? -1 : 1;
    if (a->end.carry != b->end.carry)
        return a->end.carry < b->end.carry ? -1 : 1;
    if (a->end.low != b->end.low)
        return a->end.low < b->end.low ? -1 : 1;
    return a->load < b->load ? -1 : a->load > b->load;
}

static int put(PyObject *hits, const char *check, PyObject *values) {
    if (values == NULL)
        return -1;
    int rc = PyDict_SetItemString(hits, check, values);
    Py_DECREF(values);
    return rc;
}

static uint64_t phdr_size(int bits) { return bits == 64 ? 56 : 32; }
static uint64_t shdr_size(int bits) { return bits == 64 ? 64 : 40; }

/* PPC64 ELFv1: e_entry points at a function descriptor in .opd (data), not at code. */
static int ppc64_elfv1(const Image *e) { return e->machine == EM_PPC64 && (e->flags & 3) != 2; }

/* What the program headers show, for the checks of header_hits. Load indices count PT_LOADs only, in
 * table order; other indices are program header numbers; -1: none. */
typedef struct {
    Py_ssize_t beyond, first_beyond, rwx, first_rwx, misaligned, bigger, other_beyond, overlap[2];
    Py_ssize_t phdr_not_loaded, dynamics, dynamic_without_section, covering, interpreters;
    int entry_outside, entry_not_executable;
} Segments;

static int segment_facts(const Image *e, Segments *f) {
    Py_ssize_t n = phdr_count(e);
    *f = (Segments){0, -1, 0, -1, -1, -1, -1, {-1, -1}, -1, 0, -1, -1, 0, 0, 0};
    if (n == 0)
        return 0;
    Phdr *loads = PyMem_Malloc(sizeof(Phdr) * (size_t)n);
    Range *ranges = PyMem_Malloc(sizeof(Range) * (size_t)n);
    if (loads == NULL || ranges == NULL) {
        PyMem_Free(loads);
        PyMem_Free(ranges);
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t nloads = 0, first_dynamic = -1, first_phdr = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        Phdr p;
        phdr_at(e, i, &p);
        if (p.type == PT_LOAD)
            loads[nloads++] = p;
        else if (f->other_beyond < 0 && p.filesz && add_sat(p.offset, p.filesz) > e->size)
            f->other_beyond = i;
        if (p.type == PT_DYNAMIC && f->dynamics++ == 0)
            first_dynamic = i;
        if (p.type == PT_PHDR && first_phdr < 0)
            first_phdr = i;
        f->interpreters += p.type == PT_INTERP;
    }
    int runnable = e->type == ET_EXEC || e->type == ET_DYN;
    if (e->type != ET_CORE) {
        Py_ssize_t nranges = 0;
        for (Py_ssize_t i = 0; i < nloads; i++) {
            Phdr *p = &loads[i];
            if (p->filesz && add_sat(p->offset, p->filesz) > e->size && f->beyond++ == 0)
                f->first_beyond = i;
            if ((p->flags & (PF_R | PF_W | PF_X)) == (PF_R | PF_W | PF_X) && f->rwx++ == 0)
                f->first_rwx = i;
            if (f->misaligned < 0 && p->align > 1 && (p->align & (p->align - 1)) == 0 &&
                ((p->vaddr - p->offset) & (p->align - 1)))
                f->misaligned = i;
            if (f->bigger < 0 && p->filesz > p->memsz)
                f->bigger = i;
            if (p->memsz)
                ranges[nranges++] = (Range){p->vaddr, end_of(p->vaddr, p->memsz), i};
        }
        qsort(ranges, (size_t)nranges, sizeof(Range), range_cmp);
        for (Py_ssize_t k = 1; k < nranges; k++)
            if (below_end(ranges[k].start, ranges[k - 1].end)) {
                f->overlap[0] = ranges[k - 1].load, f->overlap[1] = ranges[k].load;
                break;
            }
        if (first_phdr >= 0 && runnable && nloads) {
            Phdr ph;
            phdr_at(e, first_phdr, &ph);
            int loaded = 0;
            for (Py_ssize_t i = 0; i < nloads && !loaded; i++)
                loaded = loads[i].vaddr <= ph.vaddr &&
                         end_le(end_of(ph.vaddr, ph.filesz), end_of(loads[i].vaddr, loads[i].filesz));
            if (!loaded)
                f->phdr_not_loaded = first_phdr;
        }
        if (first_dynamic >= 0) {
            const SectionTable *t = (const SectionTable *)e->shdrs;
            Phdr dyn;
            phdr_at(e, first_dynamic, &dyn);
            int described = t->count == 0;
            for (Py_ssize_t i = 0; i < t->count && !described; i++) {
                Shdr sec;
                shdr_at(t, i, &sec);
                /* a separate debug file keeps .dynamic at its address, as SHT_NOBITS */
                described = sec.type == SHT_DYNAMIC || (sec.addr == dyn.vaddr && sec.size);
            }
            if (!described)
                f->dynamic_without_section = first_dynamic;
        }
    }
    if (runnable && e->entry != 0 && nloads) {
        int executable = 0;
        for (Py_ssize_t i = 0; i < nloads; i++)
            if (loads[i].vaddr <= e->entry && below_end(e->entry, end_of(loads[i].vaddr, loads[i].memsz))) {
                if (f->covering < 0)
                    f->covering = i;
                executable |= (loads[i].flags & PF_X) != 0;
            }
        f->entry_outside = f->covering < 0;
        f->entry_not_executable = f->covering >= 0 && !executable && !ppc64_elfv1(e);
    }
    PyMem_Free(loads);
    PyMem_Free(ranges);
    return 0;
}

/* B7: the section-name string table index, when sections are declared: SHN_UNDEF, out of range, or naming a
 * section (among those read) that is not a string table. */
static const char *shstrndx_problem(const Image *e, const SectionTable *t) {
    if (!e->shnum_eff || (e->shstrndx == SHN_XINDEX && t->count == 0))
        return NULL;
    uint64_t idx = e->shstrndx_eff;
    if (idx == 0)
        return "shstrndx_undef";
    if (idx >= e->shnum_eff)
        return "shstrndx_out_of_range";
    if (t->count && idx < (uint64_t)t->count) {
        Shdr s;
        shdr_at(t, (Py_ssize_t)idx, &s);
        if (s.type != SHT_STRTAB)
            return "shstrndx_not_strtab";
    }
    return NULL;
}

/* B16: one entry per kind of section inconsistency, ordered by the first section showing it (as a walk of the
 * table meets them): (count, the first MAX_LISTED section indices). */
static int put_section_problems(PyObject *hits, const Image *e, const SectionTable *t) {
    SectionProblems found;
    section_problems(t, e->size, &found);
    int done[N_SECTION_PROBLEMS] = {0};
    for (;;) {
        int next = -1;
        for (int k = 0; k < N_SECTION_PROBLEMS; k++)
            if (found.count[k] && !done[k] && (next < 0 || found.first[k][0] < found.first[next][0]))
                next = k;
        if (next < 0)
            return 0;
        done[next] = 1;
        Py_ssize_t listed = found.count[next] < MAX_LISTED ? found.count[next] : MAX_LISTED;
        PyObject *values = PyTuple_New(1 + listed);
        if (values == NULL)
            return -1;
        for (Py_ssize_t i = 0; i <= listed; i++) {
            PyObject *v = PyLong_FromSsize_t(i ? found.first[next][i - 1] : found.count[next]);
            if (v == NULL) {
                Py_DECREF(values);
                return -1;
            }
            PyTuple_SET_ITEM(values, i, v);
        }
        if (put(hits, section_problem_names[next], values) < 0)
            return -1;
    }
}

/* Every header check that fired (docs/elf-checks.md B1–B17, A3), as condition id → the indices and counts
 * its message needs, in the order the findings are listed; "interpreter" marks a PT_INTERP, whose strings
 * the Python side judges. The messages are made in header_checks.py, segment_checks.py and
 * section_checks.py. `executable`: the file has an execute permission bit. */
static PyObject *image_header_hits(PyObject *self, PyObject *arg) {
    Image *e = (Image *)self;
    const SectionTable *t = (const SectionTable *)e->shdrs;
    int executable = PyObject_IsTrue(arg);
    Segments f;
    if (executable < 0 || segment_facts(e, &f) < 0)
        return NULL;
    PyObject *hits = PyDict_New();
    if (hits == NULL)
        return NULL;
    int runnable = e->type == ET_EXEC || e->type == ET_DYN, err = 0;
    uint64_t ehdr = e->bits == 64 ? 64 : 52, phent = phdr_size((int)e->bits), shent = shdr_size((int)e->bits);
    if ((e->ei_class != 1 && e->ei_class != 2) || (e->ei_data != 1 && e->ei_data != 2) || e->ei_version != 1 ||
        e->version != 1)
        err |= put(hits, "bad_ident", PyTuple_New(0));
    else if (e->layout_inferred)
        err |= put(hits, "ident_contradicts_header", PyTuple_New(0));
    if (e->ehsize != ehdr)
        err |= put(hits, "bad_ehsize", PyTuple_New(0));
    if (e->phnum_eff && e->phentsize != phent)
        err |= put(hits, "bad_phentsize", PyTuple_New(0));
    if (e->phnum_eff && add_sat(e->phoff, mul_sat(e->phnum_eff, e->phentsize)) > e->size)
        err |= put(hits, "pht_beyond_eof", PyTuple_New(0));
    if (runnable && e->phnum_eff == 0)
        err |= put(hits, "no_program_headers", PyTuple_New(0));
    if (0 < e->phoff && e->phoff < ehdr && e->phnum_eff)
        err |= put(hits, "pht_overlaps_ehdr", PyTuple_New(0));
    if (e->shoff && e->shnum_eff) {
        if (add_sat(e->shoff, mul_sat(e->shnum_eff, e->shentsize)) > e->size || e->shoff >= e->size)
            err |= put(hits, "sht_beyond_eof", PyTuple_New(0));
    } else if (e->shoff && e->shnum == 0 && e->shnum_eff == 0) {
        err |= put(hits, "shoff_without_shnum", PyTuple_New(0));
    }
    if (e->shnum_eff && e->shentsize != shent)
        err |= put(hits, "bad_shentsize", PyTuple_New(0));
    const char *shstrndx = shstrndx_problem(e, t);
    if (shstrndx != NULL)
        err |= put(hits, shstrndx, PyTuple_New(0));
    if (runnable && e->shoff == 0 && e->shnum == 0)
        err |= put(hits, "no_section_table", PyTuple_New(0));
    if (f.beyond)
        err |= put(hits, "load_beyond_eof", Py_BuildValue("(nn)", f.first_beyond, f.beyond));
    if (f.entry_outside)
        err |= put(hits, "entry_outside_segments", PyTuple_New(0));
    else if (f.entry_not_executable)
        err |= put(hits, "entry_not_executable", Py_BuildValue("(n)", f.covering));
    if (runnable && e->entry != 0 && t->count && !ppc64_elfv1(e)) { /* B12 */
        int inside;
        Py_ssize_t count = code_sections(t, e->entry, 1, &inside);
        if (count && !inside)
            err |= put(hits, "entry_not_in_code_section", Py_BuildValue("(n)", count));
    }
    if (f.rwx)
        err |= put(hits, "rwx_segment", Py_BuildValue("(nn)", f.first_rwx, f.rwx));
    if (f.misaligned >= 0)
        err |= put(hits, "segment_misaligned", Py_BuildValue("(n)", f.misaligned));
    if (f.overlap[0] >= 0)
        err |= put(hits, "segments_overlap", Py_BuildValue("(nn)", f.overlap[0], f.overlap[1]));
    if (f.interpreters)
        err |= put(hits, "interpreter", Py_BuildValue("(n)", f.interpreters));
    err |= put_section_problems(hits, e, t);
    if (f.bigger >= 0)
        err |= put(hits, "segment_filesz_exceeds_memsz", Py_BuildValue("(n)", f.bigger));
    if (f.other_beyond >= 0 && e->type != ET_CORE)
        err |= put(hits, "segment_beyond_eof", Py_BuildValue("(n)", f.other_beyond));
    if (f.phdr_not_loaded >= 0)
        err |= put(hits, "phdr_not_loaded", Py_BuildValue("(n)", f.phdr_not_loaded));
    if (f.dynamics > 1 && e->type != ET_CORE)
        err |= put(hits, "multiple_dynamic_segments", Py_BuildValue("(n)", f.dynamics));
    if (f.dynamic_without_section >= 0)
        err |= put(hits, "dynamic_without_section", Py_BuildValue("(n)", f.dynamic_without_section));
    if (!(e->type <= ET_CORE || e->type >= 0xFE00)) /* B17 */
        err |= put(hits, "unknown_type", PyTuple_New(0));
    else if (executable && !runnable)
        err |= put(hits, "odd_type_executable", PyTuple_New(0));
    /* A3: Linux binaries carry SYSV (0) or GNU/Linux (3); legacy ARM 97 */
    if (runnable && e->osabi != 0 && e->osabi != 3 && !(e->machine == EM_ARM && e->osabi == 97))
        err |= put(hits, "osabi_not_linux", PyTuple_New(0));
    if (err) {
        Py_DECREF(hits);
        return NULL;
    }
    return hits;
}

/* ---------- Linkage (what identity.py reports: the interpreters and whether the file links dynamically) ---------- */

#define MAX_INTERP 4096
#define MAX_DYNAMIC (64 * 1024)
#define DT_FLAGS_1 0x6FFFFFFBu
#define DF_1_PIE 0x08000000u

/* Whether the dynamic section at `dyn` carries DF_1_PIE in its first DT_FLAGS_1 entry (a static-pie
 * executable has no PT_INTERP); -1 on a read error. */
static int dynamic_is_pie(Image *e, const Phdr *dyn) {
    PyObject *data = image_read_u64(e, dyn->offset, dyn->filesz < MAX_DYNAMIC ? dyn->filesz : MAX_DYNAMIC);
    if (data == NULL)
        return -1;
    const uint8_t *d = (const uint8_t *)PyBytes_AS_STRING(data);
    Py_ssize_t len = PyBytes_GET_SIZE(data), w = e->bits == 64 ? 8 : 4;
    int pie = 0;
    for (Py_ssize_t at = 0; at + 2 * w <= len; at += 2 * w)
        if (rd(d + at, (int)w, e->little) == DT_FLAGS_1) {
            pie = (rd(d + at + w, (int)w, e->little) & DF_1_PIE) != 0;
            break;
        }
    Py_DECREF(data);
    return pie;
}

/* (the first MAX_LISTED PT_INTERP paths as raw bytes, each cut at its first NUL and read up to MAX_INTERP;
 * whether the file links dynamically: a loader named, or a PT_DYNAMIC other than a static-pie executable's). */
static PyObject *image_linkage(PyObject *self, PyObject *unused) {
    Image *e = (Image *)self;
    Py_ssize_t n = phdr_count(e);
    PyObject *interps = PyList_New(0);
    if (interps == NULL)
        return NULL;
    Phdr dyn = {0};
    int dynamic = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Phdr p;
        phdr_at(e, i, &p);
        if (p.type == PT_DYNAMIC && !dynamic) {
            dyn = p;
            dynamic = 1;
        }
        if (p.type != PT_INTERP || PyList_GET_SIZE(interps) == MAX_LISTED)
            continue; /* the kernel uses the first; a finding names MAX_LISTED (header_hits counts them all) */
        PyObject *raw = p.filesz ? image_read_u64(e, p.offset, p.filesz < MAX_INTERP ? p.filesz : MAX_INTERP)
                                 : PyBytes_FromStringAndSize(NULL, 0);
        if (raw == NULL) {
            Py_DECREF(interps);
            return NULL;
        }
        const char *text = PyBytes_AS_STRING(raw);
        const char *nul = memchr(text, 0, (size_t)PyBytes_GET_SIZE(raw));
        PyObject *path = nul ? PyBytes_FromStringAndSize(text, nul - text) : Py_NewRef(raw);
        Py_DECREF(raw);
        if (path == NULL || PyList_Append(interps, path) < 0) {
            Py_XDECREF(path);
            Py_DECREF(interps);
            return NULL;
        }
        Py_DECREF(path);
    }
    int links = PyList_GET_SIZE(interps) > 0;
    if (!links && dynamic) {
        int pie = e->type == ET_DYN ? dynamic_is_pie(e, &dyn) : 0;
        if (pie < 0) {
            Py_DECREF(interps);
            return NULL;
        }
        links = !pie;
    }
    return Py_BuildValue("(NO)", interps, links ? Py_True : Py_False);
}

/* ---------- Packer probe (conditions here, the deeper look and the messages in analysis/packing/) ---------- */

#define UPX_TAIL_PROBE 64
#define UPX_TRAILER_FROM_END 36
#define EXPANSION_MIN (64 * 1024)
/* The l_info format versions UPX writes (upx.FORMAT_VERSIONS: UPX 1.x to 5.x). */
static const unsigned upx_versions[] = {11, 12, 13, 14};

static int upx_version(uint64_t version) {
    for (size_t i = 0; i < sizeof upx_versions / sizeof *upx_versions; i++)
        if (version == upx_versions[i])
            return 1;
    return 0;
}

/* `l_info` + `p_info` as UPX writes them right after the program header table: (offset, magic, lsize,
 * version, format, p_filesize, p_blocksize, plausible), None when the file has no 24 bytes there; `upx_magic`
 * and `plausible` set from it. */
static PyObject *read_l_info(Image *e, int *upx_magic, int *plausible) {
    uint64_t at = add_sat(e->phoff, mul_sat(e->phnum_eff, e->phentsize));
    if (at == 0 || at >= e->size)
        Py_RETURN_NONE;
    PyObject *raw = image_read_u64(e, at, 24);
    if (raw == NULL || PyBytes_GET_SIZE(raw) != 24) {
        Py_XDECREF(raw);
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;
    }
    const uint8_t *r = (const uint8_t *)PyBytes_AS_STRING(raw);
    int le = e->little;
    uint64_t lsize = rd(r + 8, 2, le), version = r[10], format = r[11];
    /* shaped like UPX's whatever its magic: a known format version, a loader size, a format id */
    *plausible = upx_version(version) && 0x100 <= lsize && lsize <= 0x8000 && format > 0;
    *upx_magic = memcmp(r + 4, "UPX!", 4) == 0;
    PyObject *l_info = Py_BuildValue("(Ky#KKKKKO)", (unsigned long long)at, r + 4, (Py_ssize_t)4,
                                     (unsigned long long)lsize, (unsigned long long)version,
                                     (unsigned long long)format, (unsigned long long)rd(r + 16, 4, le),
                                     (unsigned long long)rd(r + 20, 4, le), *plausible ? Py_True : Py_False);
    Py_DECREF(raw);
    return l_info;
}

/* The R-X PT_LOAD (index among the PT_LOADs) when the program headers have the shape every UPX ELF stub
 * writes, whatever the architecture and version (UPX 3.91–4.2.2, eight architectures): no PT_INTERP or
 * PT_DYNAMIC, exactly two PT_LOADs, one read-execute from offset 0 holding at least half the file with the
 * entry point in its second half (the loader follows the compressed data), the other writable with at most a
 * page of file bytes (the space the program is unpacked into); -1 otherwise. */
static Py_ssize_t stub_layout(const Image *e) {
    Py_ssize_t n = phdr_count(e), nloads = 0, code = -1, data = -1;
    Phdr loads[2], p;
    for (Py_ssize_t i = 0; i < n; i++) {
        phdr_at(e, i, &p);
        if (p.type == PT_INTERP || p.type == PT_DYNAMIC)
            return -1;
        if (p.type == PT_LOAD && nloads++ < 2)
            loads[nloads - 1] = p;
    }
    if (nloads != 2)
        return -1;
    for (Py_ssize_t i = 0; i < 2; i++) {
        uint64_t wx = loads[i].flags & (PF_W | PF_X);
        if (wx == PF_X && code < 0)
            code = i;
        if (wx == PF_W && data < 0)
            data = i;
    }
    if (code < 0 || data < 0 || loads[code].offset != 0 || loads[data].filesz > 0x1000)
        return -1;
    uint64_t filesz = loads[code].filesz;
    if (mul_sat(2, filesz) < e->size || e->entry < loads[code].vaddr)
        return -1;
    uint64_t entry = e->entry - loads[code].vaddr;
    return filesz / 2 <= entry && entry < filesz ? code : -1;
}

/* What decides whether a runnable file gets the packer's deeper look, or None when nothing does (no UPX
 * magic or l_info shape, no stub layout, a section table, no expanding code: ordinary binaries):
 * (l_info or None, the 4 bytes where the PackHeader's magic sits, the stub's R-X PT_LOAD or None, the
 * first executable PT_LOAD that grows in memory ≥ 2× and by ≥ 64 KiB or None, whether any executable
 * PT_LOAD has file bytes). PT_LOAD indices count PT_LOADs only. Two small reads: the 24 bytes after the
 * program headers (in the head) and the last 64 bytes. */
static PyObject *image_packer_probe(PyObject *self, PyObject *unused) {
    Image *e = (Image *)self;
    Py_ssize_t n = phdr_count(e);
    if (!(e->type == ET_EXEC || e->type == ET_DYN) || n == 0)
        Py_RETURN_NONE;
    Py_ssize_t nloads = 0, expanding = -1;
    int code_bytes = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Phdr p;
        phdr_at(e, i, &p);
        if (p.type != PT_LOAD)
            continue;
        if (p.flags & PF_X) {
            code_bytes |= p.filesz != 0;
            /* memsz >= 2 × filesz, as unbounded integers compare */
            if (expanding < 0 && p.filesz <= p.memsz / 2 && p.memsz - p.filesz >= EXPANSION_MIN)
                expanding = nloads;
        }
        nloads++;
    }
    int upx_magic = 0, shaped = 0;
    PyObject *l_info = read_l_info(e, &upx_magic, &shaped);
    if (l_info == NULL)
        return NULL;
    PyObject *tail = e->size >= UPX_TAIL_PROBE ? image_read_u64(e, e->size - UPX_TAIL_PROBE, UPX_TAIL_PROBE)
                                               : PyBytes_FromStringAndSize(NULL, 0);
    if (tail == NULL) {
        Py_DECREF(l_info);
        return NULL;
    }
    const char *t = PyBytes_AS_STRING(tail);
    Py_ssize_t magic_len = PyBytes_GET_SIZE(tail) == UPX_TAIL_PROBE ? 4 : 0;
    const char *magic = t + UPX_TAIL_PROBE - UPX_TRAILER_FROM_END;
    upx_magic |= magic_len && memcmp(magic, "UPX!", 4) == 0;
    Py_ssize_t stub = stub_layout(e);
    PyObject *out;
    if (!(upx_magic || shaped || stub >= 0 || ((SectionTable *)e->shdrs)->count == 0 || expanding >= 0)) {
        Py_INCREF(Py_None);
        out = Py_None;
    } else {
        PyObject *stub_obj = stub >= 0 ? PyLong_FromSsize_t(stub) : Py_NewRef(Py_None);
        PyObject *expanding_obj = expanding >= 0 ? PyLong_FromSsize_t(expanding) : Py_NewRef(Py_None);
        out = stub_obj && expanding_obj
                  ? Py_BuildValue("(Oy#OOO)", l_info, magic, magic_len, stub_obj, expanding_obj,
                                  code_bytes ? Py_True : Py_False)
                  : NULL;
        Py_XDECREF(stub_obj);
        Py_XDECREF(expanding_obj);
    }
    Py_DECREF(l_info);
    Py_DECREF(tail);
    return out;
}

/* The file header fields after e_ident, in Elf64 order, read under a layout. */
typedef struct {
    uint64_t type, machine, version, entry, phoff, shoff, flags, ehsize, phentsize, phnum, shentsize, shnum,
        shstrndx;
} Ehdr;

static void read_ehdr(const uint8_t *h, int bits, int le, Ehdr *f) {
    f->type = rd(h + 16, 2, le);
    f->machine = rd(h + 18, 2, le);
    f->version = rd(h + 20, 4, le);
    const uint8_t *p = h + 24;
    int w = bits == 64 ? 8 : 4;
    f->entry = rd(p, w, le);
    f->phoff = rd(p + w, w, le);
    f->shoff = rd(p + 2 * w, w, le);
    p += 3 * w;
    f->flags = rd(p, 4, le);
    f->ehsize = rd(p + 4, 2, le);
    f->phentsize = rd(p + 6, 2, le);
    f->phnum = rd(p + 8, 2, le);
    f->shentsize = rd(p + 10, 2, le);
    f->shnum = rd(p + 12, 2, le);
    f->shstrndx = rd(p + 14, 2, le);
}

static int plausible(const uint8_t *h, int bits, int le) {
    Ehdr f;
    read_ehdr(h, bits, le, &f);
    return (f.phentsize == phdr_size(bits)) * 4 + (f.type < 5) * 2 + (0 < f.machine && f.machine < 0x400);
}

/* The layout to parse with. EI_CLASS / EI_DATA are trusted when the header reads sanely under them;
 * otherwise (invalid or lying values) the layout is inferred the way the kernel ends up reading the file:
 * by which layout gives a program-header entry size that a loader accepts and a sane e_type / e_machine.
 * Candidates are tried with the declared values first, then 64-bit little-endian (the common case). */
static void layout(const uint8_t *h, int *bits, int *le, int *inferred) {
    int dbits = h[4] == 1 ? 32 : h[4] == 2 ? 64 : 0;
    int dle = h[5] == 1 ? 1 : h[5] == 2 ? 0 : -1;
    if (dbits && dle >= 0) {
        Ehdr f;
        read_ehdr(h, dbits, dle, &f);
        int loadable = f.type == 2 || f.type == 3;
        if (f.phentsize == phdr_size(dbits) ||
            (!loadable && f.phnum == 0 && (f.type < 5 || f.type >= 0xFE00))) {
            *bits = dbits, *le = dle, *inferred = 0;
            return;
        }
    }
    static const int cb[4] = {64, 64, 32, 32}, cl[4] = {1, 0, 1, 0};
    int order[4], n = 0;
    for (int key = 0; key < 4; key++) /* stable sort by (bits differ, byte order differs) */
        for (int i = 0; i < 4; i++)
            if ((cb[i] != dbits) * 2 + (cl[i] != dle) == key)
                order[n++] = i;
    int best = order[0], score = plausible(h, cb[best], cl[best]);
    for (int k = 1; k < 4; k++) {
        int s = plausible(h, cb[order[k]], cl[order[k]]);
        if (s > score)
            best = order[k], score = s;
    }
    *bits = cb[best], *le = cl[best];
    *inferred = !(cb[best] == dbits && cl[best] == dle);
}

/* The section table normally ends the file: when its `count` rows lie past the head and at most TAIL_SLACK
 * bytes follow them, one read brings the table and the tail the packer checks need (kept in `tail`). */
static int read_tail(Image *e, uint64_t count, uint64_t entsize) {
    uint64_t end = e->shoff + count * entsize; /* <= size: checked by the callers */
    if (PyBytes_GET_SIZE(e->tail) || end <= (uint64_t)PyBytes_GET_SIZE(e->head) || e->size - end > TAIL_SLACK)
        return 0;
    PyObject *tail = call_read(e->src, e->shoff, e->size - e->shoff);
    if (tail == NULL)
        return -1;
    Py_SETREF(e->tail, tail);
    e->tail_offset = e->shoff;
    return 0;
}

static int read_sections(Image *e) {
    if (e->shoff == 0) {
        e->shnum_eff = e->shnum;
        return 0;
    }
    uint64_t entsize = shdr_size((int)e->bits);
    uint64_t shnum = e->shnum, shstrndx = e->shstrndx;
    if (e->shentsize == entsize && add_sat(e->shoff, entsize) <= e->size) {
        /* A table whose count is in the header is read with the tail first, and row 0 sliced from it. */
        if (shnum && add_sat(e->shoff, shnum * entsize) <= e->size &&
            read_tail(e, shnum < MAX_SECTIONS ? shnum : MAX_SECTIONS, entsize) < 0)
            return -1;
        PyObject *raw0 = image_read_u64(e, e->shoff, entsize);
        if (raw0 == NULL)
            return -1;
        if ((uint64_t)PyBytes_GET_SIZE(raw0) == entsize) {
            Shdr first;
            decode_shdr((const uint8_t *)PyBytes_AS_STRING(raw0), e->bits == 64, e->little, &first);
            if (shnum == 0)
                shnum = first.size;
            if (shstrndx == SHN_XINDEX)
                shstrndx = first.link;
        }
        Py_DECREF(raw0);
    } else if (shnum == 0 && problem(e, "sht-not-available") < 0) {
        return -1;
    }
    e->shnum_eff = shnum;
    e->shstrndx_eff = shstrndx;
    if (shnum == 0)
        return 0;
    if (e->shentsize != entsize)
        return problem(e, "sht-bad-entsize");
    if (add_sat(e->shoff, mul_sat(shnum, entsize)) > e->size)
        return problem(e, "sht-beyond-eof");
    uint64_t count = shnum < MAX_SECTIONS ? shnum : MAX_SECTIONS;
    if (read_tail(e, count, entsize) < 0)
        return -1;
    PyObject *data = image_read_u64(e, e->shoff, count * entsize);
    if (data == NULL)
        return -1;
    if ((uint64_t)PyBytes_GET_SIZE(data) < count * entsize) {
        Py_DECREF(data);
        return problem(e, "sht-not-available");
    }
    SectionTable *t = sections_new(data, (Py_ssize_t)count, e->bits == 64, e->little);
    Py_DECREF(data);
    if (t == NULL)
        return -1;
    Py_SETREF(e->shdrs, (PyObject *)t);
    return 0;
}

static int read_segments(Image *e) {
    uint64_t phnum = e->phnum;
    SectionTable *t = (SectionTable *)e->shdrs;
    if (phnum == PN_XNUM && t->count) {
        Shdr first;
        shdr_at(t, 0, &first);
        phnum = first.info;
    }
    e->phnum_eff = phnum;
    if (phnum == 0 || e->phoff == 0)
        return 0;
    uint64_t entsize = phdr_size((int)e->bits);
    if (e->phentsize != entsize)
        return problem(e, "pht-bad-entsize");
    if (e->phoff >= e->size)
        return problem(e, "pht-beyond-eof");
    uint64_t want = phnum * entsize < MAX_PHT_BYTES ? phnum * entsize : MAX_PHT_BYTES; /* phnum < 2^32 */
    PyObject *data = read_table(e, e->phoff, want);
    if (data == NULL)
        return -1;
    uint64_t got = (uint64_t)PyBytes_GET_SIZE(data);
    if (got < phnum * entsize && problem(e, "pht-truncated") < 0) {
        Py_DECREF(data);
        return -1;
    }
    Py_ssize_t count = (Py_ssize_t)(got / entsize);
    PyObject *rows = PyList_New(count);
    if (rows == NULL) {
        Py_DECREF(data);
        return -1;
    }
    const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(data);
    int le = e->little;
    for (Py_ssize_t i = 0; i < count; i++, p += entsize) {
        uint64_t v[8]; /* Phdr order (Elf64): type, flags, offset, vaddr, paddr, filesz, memsz, align */
        if (e->bits == 64) {
            v[0] = rd(p, 4, le); v[1] = rd(p + 4, 4, le);
            for (int k = 0; k < 6; k++)
                v[2 + k] = rd(p + 8 + 8 * k, 8, le);
        } else { /* Elf32_Phdr: type, offset, vaddr, paddr, filesz, memsz, flags, align */
            v[0] = rd(p, 4, le); v[2] = rd(p + 4, 4, le); v[3] = rd(p + 8, 4, le); v[4] = rd(p + 12, 4, le);
            v[5] = rd(p + 16, 4, le); v[6] = rd(p + 20, 4, le); v[1] = rd(p + 24, 4, le); v[7] = rd(p + 28, 4, le);
        }
        PyObject *row = new_row(phdr_type, v, 8);
        if (row == NULL) {
            Py_DECREF(rows);
            Py_DECREF(data);
            return -1;
        }
        PyList_SET_ITEM(rows, i, row);
        if (v[0] == PT_LOAD && PyList_Append(e->loads, row) < 0) {
            Py_DECREF(rows);
            Py_DECREF(data);
            return -1;
        }
    }
    Py_XSETREF(e->phdr_data, data);
    Py_SETREF(e->phdrs, rows);
    return 0;
}

static PyObject *parse(PyObject *module, PyObject *args) {
    PyObject *src, *head;
    if (!PyArg_ParseTuple(args, "OO!", &src, &PyBytes_Type, &head))
        return NULL;
    if (phdr_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "bind() the Phdr and Shdr types first");
        return NULL;
    }
    Py_ssize_t head_len = PyBytes_GET_SIZE(head);
    const uint8_t *raw = (const uint8_t *)PyBytes_AS_STRING(head);
    if (head_len < 4 || memcmp(raw, "\x7f" "ELF", 4) != 0)
        Py_RETURN_NONE;
    PyObject *size_obj = PyObject_GetAttr(src, str_size);
    if (size_obj == NULL)
        return NULL;
    uint64_t size = PyLong_AsUnsignedLongLong(size_obj);
    Py_DECREF(size_obj);
    if (size == (uint64_t)-1 && PyErr_Occurred())
        return NULL;
    uint8_t padded[64] = {0};
    memcpy(padded, raw, head_len < 64 ? (size_t)head_len : 64);
    int bits, le, inferred;
    layout(padded, &bits, &le, &inferred);
    Ehdr f;
    read_ehdr(padded, bits, le, &f);

    Image *e = PyObject_New(Image, &ImageType);
    if (e == NULL)
        return NULL;
    Py_INCREF(src);
    e->src = src;
    Py_INCREF(head);
    e->head = head;
    e->phdrs = PyList_New(0);
    e->loads = PyList_New(0);
    e->shdrs = (PyObject *)sections_new(NULL, 0, bits == 64, le);
    e->problems = PyList_New(0);
    e->tail = PyBytes_FromStringAndSize(NULL, 0);
    e->phdr_data = NULL;
    e->size = size;
    e->bits = (unsigned)bits;
    e->little = (char)le;
    e->layout_inferred = (char)inferred;
    e->ei_class = padded[4], e->ei_data = padded[5], e->ei_version = padded[6];
    e->osabi = padded[7], e->abiversion = padded[8];
    e->type = (unsigned)f.type, e->machine = (unsigned)f.machine, e->version = (unsigned)f.version;
    e->entry = f.entry, e->phoff = f.phoff, e->shoff = f.shoff, e->flags = (unsigned)f.flags;
    e->ehsize = (unsigned)f.ehsize, e->phentsize = (unsigned)f.phentsize, e->phnum = (unsigned)f.phnum;
    e->shentsize = (unsigned)f.shentsize, e->shnum = (unsigned)f.shnum, e->shstrndx = (unsigned)f.shstrndx;
    e->tail_offset = 0, e->phnum_eff = 0, e->shnum_eff = 0, e->shstrndx_eff = 0;
    if (!e->phdrs || !e->loads || !e->shdrs || !e->problems || !e->tail ||
        (head_len < (bits == 64 ? 64 : 52) && problem(e, "header-truncated") < 0) || read_sections(e) < 0 ||
        read_segments(e) < 0) {
        Py_DECREF(e);
        return NULL;
    }
    return (PyObject *)e;
}

static PyObject *bind(PyObject *module, PyObject *args) {
    PyObject *phdr, *shdr;
    if (!PyArg_ParseTuple(args, "O!O!", &PyType_Type, &phdr, &PyType_Type, &shdr))
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)phdr, &PyTuple_Type) ||
        !PyType_IsSubtype((PyTypeObject *)shdr, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "Phdr and Shdr must be tuple types");
        return NULL;
    }
    Py_INCREF(phdr);
    Py_XSETREF(phdr_type, (PyTypeObject *)phdr);
    Py_INCREF(shdr);
    Py_XSETREF(shdr_type, (PyTypeObject *)shdr);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"parse", parse, METH_VARARGS,
     "parse(src, head) -> ElfImage | None: the headers of `src` (a ByteSource) whose first bytes are `head`; "
     "None when they do not start with the ELF magic."},
    {"bind", bind, METH_VARARGS, "bind(Phdr, Shdr): the tuple types rows are returned as."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_native", "Bounded ELF header and table reader (see reader.py).", -1, module_methods,
};

static PyObject *upx_format_versions(void) {
    size_t n = sizeof upx_versions / sizeof *upx_versions;
    PyObject *versions = PyTuple_New((Py_ssize_t)n);
    for (size_t i = 0; versions != NULL && i < n; i++) {
        PyObject *v = PyLong_FromUnsignedLong(upx_versions[i]);
        if (v == NULL) {
            Py_CLEAR(versions);
            break;
        }
        PyTuple_SET_ITEM(versions, (Py_ssize_t)i, v);
    }
    return versions;
}

PyMODINIT_FUNC PyInit__native(void) {
    if (PyType_Ready(&SectionTableType) < 0 || PyType_Ready(&ImageType) < 0)
        return NULL;
    str_read = PyUnicode_InternFromString("read");
    str_size = PyUnicode_InternFromString("size");
    if (str_read == NULL || str_size == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    Py_INCREF(&ImageType);
    Py_INCREF(&SectionTableType);
    if (PyModule_AddIntConstant(m, "MAX_PHT_BYTES", MAX_PHT_BYTES) < 0 ||
        PyModule_AddIntConstant(m, "MAX_SECTIONS", MAX_SECTIONS) < 0 ||
        PyModule_AddIntConstant(m, "TAIL_SLACK", TAIL_SLACK) < 0 ||
        PyModule_AddObject(m, "UPX_FORMAT_VERSIONS", upx_format_versions()) < 0 ||
        PyModule_AddObject(m, "ElfImage", (PyObject *)&ImageType) < 0 ||
        PyModule_AddObject(m, "SectionTable", (PyObject *)&SectionTableType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
