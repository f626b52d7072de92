package daemon

import (
	"slices"
	"testing"

	"github.com/walkeeper/walkeeper/internal/config"
)

// TestReservedNames: every directory walkeeper keeps in home under a name a server
// section could take is refused as a server name by the configuration.
func TestReservedNames(t *testing.T) {
	for _, n := range []string{IndexName} {
		if !slices.Contains(config.ReservedNames, n) {
			t.Errorf("home entry %q is not in config.ReservedNames: a server of that name would share it", n)
		}
	}
}
