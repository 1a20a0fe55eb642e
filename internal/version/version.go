// Package version says which build of Deviceless is running. `deviceless version`, the
// engine's start line, the demo's header and every agent's status (`version`) report it.
package version

import (
	"runtime/debug"
	"strings"
)

// tag is set when linking; the Taskfile's build tasks do it with the output of
// `git describe --tags --always --dirty`:
//
//	go build -ldflags "-X github.com/deviceless/deviceless/internal/version.tag=v1.2.0-3-gabc1234" ./cmd/deviceless
var tag string

// Devel is what a build that carries no version reports.
const Devel = "(devel)"

// String returns the version of this build: the tag set when linking; else the module
// version (`go install github.com/deviceless/deviceless/cmd/deviceless@v1.2.0`, or the
// pseudo-version the go command stamps in a git checkout); else the VCS revision and time
// the go command recorded, "-dirty" when the tree was modified; else "(devel)" (a build
// with -buildvcs=false and no tag, such as `go test`).
func String() string {
	bi, _ := debug.ReadBuildInfo()
	return resolve(tag, bi)
}

func resolve(tag string, bi *debug.BuildInfo) string {
	if tag = strings.TrimSpace(tag); tag != "" {
		return tag
	}
	if bi == nil {
		return Devel
	}
	if v := bi.Main.Version; v != "" && v != Devel {
		return v
	}
	var rev, at string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return Devel
	}
	out := rev[:min(len(rev), 12)]
	if dirty {
		out += "-dirty"
	}
	if at != "" {
		out += " (" + at + ")"
	}
	return out
}
