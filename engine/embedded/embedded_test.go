package embedded_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/engine/embedded"
	"github.com/recoverd/recoverd/engine/embedded/embeddedtest"
	"github.com/recoverd/recoverd/engine/enginetest"
)

// harness opens the reference engine in process, as recoverd does.
func harness() enginetest.Harness {
	return embeddedtest.Harness(
		func(dir string, o enginetest.Options) (engine.Engine, error) { return embeddedtest.Open(dir, o) },
		func(e engine.Engine) *embedded.Engine { return e.(*embedded.Engine) })
}

func TestMain(m *testing.M) {
	enginetest.RunChild(harness())
	goleak.VerifyTestMain(m)
}

// TestAcceptance runs the engine contract's acceptance suite on the
// reference engine in process.
func TestAcceptance(t *testing.T) { enginetest.Run(t, harness()) }
