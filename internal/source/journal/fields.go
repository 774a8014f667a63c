package journal

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

enum { NH_MESSAGE, NH_IDENTIFIER, NH_UNIT, NH_PRIORITY, NH_OWN, NH_NFIELDS };

typedef struct {
	void (*restart_data)(void *j);
	int (*enumerate_data)(void *j, const void **data, size_t *len);
	int (*get_realtime_usec)(void *j, uint64_t *usec);
} nh_api;

typedef struct {
	size_t off[NH_NFIELDS];
	size_t len[NH_NFIELDS];
	uint8_t found[NH_NFIELDS];
	uint8_t truncated;
	uint64_t realtime;
} nh_entry;

static const char *const nh_prefix[NH_NFIELDS] = {
	"MESSAGE=", "SYSLOG_IDENTIFIER=", "_SYSTEMD_UNIT=", "PRIORITY=", "NODEHEALTH_REASON=",
};

// The handle stays open for the life of the process, as go-systemd's does;
// it is the same library go-systemd loaded.
static int nh_load(nh_api *api) {
	void *h = dlopen("libsystemd.so.0", RTLD_LAZY);
	if (!h)
		return -1;
	api->restart_data = dlsym(h, "sd_journal_restart_data");
	// The _available_ variant skips fields it cannot decompress instead of
	// failing the whole entry; it is missing before systemd 246.
	api->enumerate_data = dlsym(h, "sd_journal_enumerate_available_data");
	if (!api->enumerate_data)
		api->enumerate_data = dlsym(h, "sd_journal_enumerate_data");
	api->get_realtime_usec = dlsym(h, "sd_journal_get_realtime_usec");
	return api->restart_data && api->enumerate_data && api->get_realtime_usec ? 0 : -1;
}

// nh_read copies the values of the wanted fields of the current entry into
// buf, because what sd-journal returns is only valid until its next call.
static int nh_read(const nh_api *api, void *j, char *buf, size_t cap, nh_entry *e) {
	const void *d;
	size_t l, used = 0;
	int r;

	memset(e, 0, sizeof *e);
	api->restart_data(j);
	while ((r = api->enumerate_data(j, &d, &l)) > 0) {
		for (int i = 0; i < NH_NFIELDS; i++) {
			size_t n = strlen(nh_prefix[i]);
			if (e->found[i] || l < n || memcmp(d, nh_prefix[i], n) != 0)
				continue;
			size_t v = l - n;
			if (v > cap - used) {
				v = cap - used;
				e->truncated = 1;
			}
			memcpy(buf + used, (const char *)d + n, v);
			e->off[i] = used;
			e->len[i] = v;
			e->found[i] = 1;
			used += v;
			break;
		}
	}
	if (r < 0)
		return r;
	return api->get_realtime_usec(j, &e->realtime);
}
*/
import "C"

import (
	"bytes"
	"reflect"
	"time"
	"unsafe"

	"github.com/coreos/go-systemd/v22/sdjournal"

	"github.com/nodehealthd/nodehealthd/internal/source"
)

// fastFieldsBuf holds the wanted values of one entry; an entry with larger
// ones is read again through sdjournal. A variable for tests.
var fastFieldsBuf = 128 << 10

// maxInterned bounds the identifier and unit strings kept for reuse.
const maxInterned = 4096

// fastFields reads an entry's fields in one pass over its data, in one cgo
// call. sdjournal only offers sd_journal_get_data per field, and each call
// scans the entry's items from the start: with the ~20 fields journald
// stores per entry, five lookups (one for a field that is nearly always
// absent, NODEHEALTH_REASON) made BenchmarkIngest 2-3 times slower. It needs
// the sd_journal pointer inside sdjournal.Journal, which it finds by name
// through reflection; if a go-systemd release renames it, newFastFields
// returns nil and the slow path is used.
type fastFields struct {
	api    C.nh_api
	j      unsafe.Pointer
	buf    []byte
	intern map[string]string
}

// useFastFields lets tests compare both paths.
var useFastFields = true

func newFastFields(j *sdjournal.Journal) *fastFields {
	if !useFastFields {
		return nil
	}
	h := handle(j)
	if h == nil {
		return nil
	}
	f := &fastFields{j: h, buf: make([]byte, fastFieldsBuf), intern: map[string]string{}}
	if C.nh_load(&f.api) != 0 {
		return nil
	}
	return f
}

// handle is the sd_journal pointer inside j, found by name through
// reflection (sdjournal does not export it); nil if a go-systemd release
// renamed it.
func handle(j *sdjournal.Journal) unsafe.Pointer {
	v := reflect.ValueOf(j).Elem().FieldByName("cjournal")
	if !v.IsValid() || v.Kind() != reflect.Pointer || v.IsNil() {
		return nil
	}
	return v.UnsafePointer()
}

// record reads the current entry into a Record; own reports the daemon's
// own entries, and ok false means it must be read the slow way.
func (f *fastFields) record() (rec source.Record, own, ok bool) {
	var e C.nh_entry
	if C.nh_read(&f.api, f.j, (*C.char)(unsafe.Pointer(&f.buf[0])), C.size_t(len(f.buf)), &e) < 0 || e.truncated != 0 {
		return rec, false, false
	}
	val := func(i C.int) []byte { return f.buf[e.off[i] : e.off[i]+e.len[i]] }
	rec = source.Record{Kind: source.KindJournal, Priority: -1, Facility: -1}
	rec.Identifier = f.str(val(C.NH_IDENTIFIER))
	if rec.Identifier == ownIdentifier || e.found[C.NH_OWN] != 0 {
		return rec, true, true
	}
	rec.Unit = f.str(val(C.NH_UNIT))
	rec.Message = string(bytes.TrimRight(val(C.NH_MESSAGE), trimSpace))
	if p := val(C.NH_PRIORITY); len(p) == 1 && '0' <= p[0] && p[0] <= '7' {
		rec.Priority = int(p[0] - '0')
	}
	rec.Time = time.UnixMicro(int64(e.realtime))
	return rec, false, true
}

// str returns b as a string, reusing an earlier copy: identifiers and units
// repeat, so this saves an allocation per field and entry.
func (f *fastFields) str(b []byte) string {
	if s, ok := f.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(f.intern) < maxInterned {
		f.intern[s] = s
	}
	return s
}
