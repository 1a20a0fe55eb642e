package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/deviceless/deviceless/internal/version"
)

// `deviceless version` prints the build's version (internal/version: the tag the Taskfile
// links in, else the module build info, else "(devel)"), the same one agents report in
// their status.
func TestVersionCommand(t *testing.T) {
	for _, arg := range []string{"version", "--version"} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{arg}, &out, &errb); code != 0 {
			t.Fatalf("%s: exit %d: %s", arg, code, errb.String())
		}
		if want := "deviceless " + version.String() + "\n"; out.String() != want {
			t.Fatalf("%s: %q, want %q", arg, out.String(), want)
		}
	}
}
