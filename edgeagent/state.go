package edgeagent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// defaultState is the state folder of agent id: $DEVICELESS_STATE/agent/{id}, else
// {user cache folder}/deviceless/agent/{id} ($XDG_CACHE_HOME or ~/.cache). It is never a
// predictable name in a folder everybody may write, such as $TMPDIR. Empty when there is
// neither (Validate says so).
func defaultState(id string) string {
	if s := os.Getenv("DEVICELESS_STATE"); s != "" {
		return filepath.Join(s, "agent", id)
	}
	if cache, err := os.UserCacheDir(); err == nil {
		return filepath.Join(cache, "deviceless", "agent", id)
	}
	return ""
}

// privateDir makes dir a folder only this process's user can use: it creates it (and its
// missing parents) with mode 0700, or checks the one that is there. A symlink in its place
// is refused (opened with O_NOFOLLOW, so one planted between the checks is refused too),
// as are something other than a folder, a folder of another user, and a folder that others
// may write (they may have planted files in it). A folder of ours that others may only
// read is made 0700.
func privateDir(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		if fi, lerr := os.Lstat(dir); lerr == nil {
			switch {
			case fi.Mode()&os.ModeSymlink != 0:
				return fmt.Errorf("%s is a symlink: refusing to follow it", dir)
			case !fi.IsDir():
				return fmt.Errorf("%s is not a folder", dir)
			}
		}
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: no owner information", dir)
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return fmt.Errorf("%s is owned by uid %d, not by this user (uid %d)", dir, st.Uid, uid)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s is writable by others (mode %04o): make it 0700 or remove it", dir, fi.Mode().Perm())
	}
	if fi.Mode().Perm() != 0o700 {
		if err := f.Chmod(0o700); err != nil {
			return err
		}
	}
	return nil
}
