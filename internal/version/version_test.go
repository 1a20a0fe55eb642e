package version

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	devel := debug.Module{Path: "github.com/deviceless/deviceless", Version: "(devel)"}
	cases := []struct {
		name string
		tag  string
		bi   *debug.BuildInfo
		want string
	}{
		{"tag wins", "v1.2.0-3-gabc1234-dirty", &debug.BuildInfo{Main: debug.Module{Version: "v1.1.0"}}, "v1.2.0-3-gabc1234-dirty"},
		{"tag without git describe tags", "181c159", &debug.BuildInfo{Main: devel}, "181c159"},
		{"module version of go install", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}}, "v1.2.0"},
		{"pseudo-version stamped in a checkout", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261201221500-181c159e1a2b+dirty"}}, "v0.0.0-20261201221500-181c159e1a2b+dirty"},
		{"vcs revision and time", "", &debug.BuildInfo{Main: devel, Settings: vcs("vcs", "git", "vcs.revision", "181c159e1a2b3c4d5e6f", "vcs.time", "2026-12-01T22:15:00Z", "vcs.modified", "false")}, "181c159e1a2b (2026-12-01T22:15:00Z)"},
		{"modified tree", "", &debug.BuildInfo{Main: devel, Settings: vcs("vcs.revision", "181c159e1a2b3c4d5e6f", "vcs.modified", "true")}, "181c159e1a2b-dirty"},
		{"-buildvcs=false and no tag", "", &debug.BuildInfo{Main: devel, Settings: vcs("-tags", "remote")}, Devel},
		{"no build info", "  ", nil, Devel},
	}
	for _, c := range cases {
		if got := resolve(c.tag, c.bi); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

// The -X flag the Taskfile's build tasks pass reaches String: the variable's path is the
// one written there.
func TestLinkerTag(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "print")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build",
		"-ldflags", "-X github.com/deviceless/deviceless/internal/version.tag=v9.8.7-test", "-o", bin, "./testdata/print")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "v9.8.7-test" {
		t.Fatalf("version %q, want v9.8.7-test", got)
	}
}
