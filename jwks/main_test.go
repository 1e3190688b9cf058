package jwks_test

import (
	"os"
	"testing"

	"github.com/tokenward/tokenward/internal/testparallel"
)

// Many tests here wait on the clock (refresh intervals), not the CPU.
func TestMain(m *testing.M) {
	testparallel.AtLeast(4)
	os.Exit(m.Run())
}
