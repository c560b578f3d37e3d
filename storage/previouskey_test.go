package storage

import (
	"errors"
	"testing"
)

// The summary-line lookup refuses a suffix with LIKE wildcards or none at all.
func TestUndecryptableWithSuffixRefusesWildcards(t *testing.T) {
	c := &Client{}
	for _, bad := range []string{"", "100%", "a_b"} {
		if _, err := c.UndecryptableWithSuffix(t.Context(), "bob", bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("suffix %q: %v", bad, err)
		}
	}
}
