package edgeagent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// newWithState runs New with testConfig's settings and the given state folder, closing
// the agent's lines when the test ends.
func newWithState(t *testing.T, state string) error {
	t.Helper()
	cfg := testConfig(t, "127.0.0.1:1")
	cfg.State = state
	a, err := New(cfg, quietLogger())
	if err == nil {
		t.Cleanup(func() { _ = a.lines.Close() })
	}
	return err
}

// The state folder holds the code functions run and the agent's memory of ids: nobody
// else may be able to point it elsewhere or write into it. A pre-planted symlink (the
// default used to be the predictable $TMPDIR/deviceless-agent-{id}) is refused, and so is a
// folder of another user or one others may write.
func TestStateFolderIsPrivate(t *testing.T) {
	t.Run("created 0700", func(t *testing.T) {
		state := filepath.Join(t.TempDir(), "a", "state")
		if err := newWithState(t, state); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(state)
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Fatalf("state folder %v (%v), want a folder with mode 0700", fi.Mode(), err)
		}
	})
	t.Run("own folder tightened", func(t *testing.T) {
		state := filepath.Join(t.TempDir(), "state")
		if err := os.Mkdir(state, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := newWithState(t, state); err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Lstat(state); fi.Mode().Perm() != 0o700 {
			t.Fatalf("mode %v, want 0700", fi.Mode().Perm())
		}
	})
	refused := []struct {
		name, want string
		plant      func(t *testing.T, state string)
	}{
		{"symlink to a folder", "symlink", func(t *testing.T, state string) {
			target := filepath.Join(filepath.Dir(state), "elsewhere")
			if err := os.Mkdir(target, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, state); err != nil {
				t.Fatal(err)
			}
		}},
		{"dangling symlink", "symlink", func(t *testing.T, state string) {
			if err := os.Symlink(filepath.Join(filepath.Dir(state), "nowhere"), state); err != nil {
				t.Fatal(err)
			}
		}},
		{"a file", "not a folder", func(t *testing.T, state string) {
			if err := os.WriteFile(state, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"writable by others", "writable by others", func(t *testing.T, state string) {
			if err := os.Mkdir(state, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(state, 0o777); err != nil {
				t.Fatal(err)
			}
		}},
		{"another user's", "owned by uid 65534", func(t *testing.T, state string) {
			if os.Geteuid() != 0 {
				t.Fatal("this case needs root to give a folder to another user (CI and go tool task test run as root, as setup does)")
			}
			if err := os.Mkdir(state, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(state, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "state")
			tt.plant(t, state)
			err := newWithState(t, state)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error with %q", err, tt.want)
			}
			if target := filepath.Join(filepath.Dir(state), "elsewhere"); tt.want == "symlink" {
				if entries, _ := os.ReadDir(target); len(entries) > 0 {
					t.Fatalf("the agent wrote through the symlink: %v", entries)
				}
			}
		})
	}
	t.Run("symlink at the default place", func(t *testing.T) {
		cfg := testConfig(t, "127.0.0.1:1") // finds the podman service through $DEVICELESS_STATE
		cfg.State = ""
		root := t.TempDir()
		t.Setenv("DEVICELESS_STATE", root)
		if err := os.MkdirAll(filepath.Join(root, "agent"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(t.TempDir(), filepath.Join(root, "agent", cfg.ID)); err != nil {
			t.Fatal(err)
		}
		if _, err := New(cfg, quietLogger()); err == nil || !strings.Contains(err.Error(), "symlink") {
			t.Fatalf("New: %v, want the planted symlink refused", err)
		}
	})
}

// Without $DEVICELESS_STATE the state folder is in the user's cache folder, not under the
// shared, predictable $TMPDIR.
func TestStateFolderDefault(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("DEVICELESS_STATE", "")
	t.Setenv("XDG_CACHE_HOME", cache)
	t.Setenv("TMPDIR", t.TempDir())
	cfg, err := ParseConfig([]byte("id: a1"))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(cache, "deviceless", "agent", "a1"); cfg.State != want {
		t.Fatalf("state %q, want %q", cfg.State, want)
	}
}
