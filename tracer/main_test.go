package tracer_test

import (
	"os"
	"testing"

	"github.com/conntrace/conntrace/tracer/testnet"
)

func TestMain(m *testing.M) {
	testnet.RunHelper()
	os.Exit(m.Run())
}
