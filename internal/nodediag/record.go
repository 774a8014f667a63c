package nodediag

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nodehealthd/nodehealthd/internal/atomicfile"
	"k8s.io/apimachinery/pkg/types"
)

// RecordFile, in the state directory, holds the last capture this node
// completed. The object's status says the same once written, but a status
// write can fail (API server down, RBAC) after the bundle was delivered:
// the record keeps a restart from capturing and uploading again, and lets
// the status be written later.
const RecordFile = "nodediagnostic.json"

// record is the last completed capture.
type record struct {
	UID        types.UID `json:"uid"`
	Generation int64     `json:"generation"`
	Completed  Completed `json:"completed"`
}

// covers says the record is of obj's request as it stands.
func (r *record) covers(obj *NodeDiagnostic) bool {
	return r != nil && r.UID == obj.UID && r.Generation >= obj.Generation
}

// loadRecord reads the record; a missing one is nil without error.
func loadRecord(dir string) (*record, error) {
	b, err := os.ReadFile(filepath.Join(dir, RecordFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// save replaces the record atomically and durably: a crash leaves the old
// record or the new one.
func (r *record) save(dir string) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, RecordFile), b, 0o600)
}
