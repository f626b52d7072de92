package storetest

import (
	"testing"

	"github.com/walkeeper/walkeeper/internal/storage"
)

// TestLocal runs the conformance table on storage.Local, the reference every other store
// is held to.
func TestLocal(t *testing.T) {
	Run(t, func(t *testing.T) storage.Store { return storage.NewLocal(t.TempDir()) }, Options{})
}
