package hostconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// writeFileAtomic replaces path with data: it writes a temporary file in the
// same directory, sets its mode, fsyncs it, renames it over path and fsyncs
// the directory. Readers see the old file or the new one, never a mix.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	tmp, err := writeTemp(path, data, mode)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("hostconfig: replacing %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// createFileExclusive creates path with data unless it already exists, in
// which case it leaves it alone and returns false. The file appears
// complete or not at all: it is written under a temporary name and
// hard-linked into place, and the link fails if path exists.
func createFileExclusive(path string, data []byte, mode fs.FileMode) (bool, error) {
	if st, err := os.Lstat(path); err == nil {
		if !st.Mode().IsRegular() {
			return false, fmt.Errorf("%w: %s exists and is not a regular file", ErrInvalidPath, path)
		}
		return false, nil
	}
	tmp, err := writeTemp(path, data, mode)
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, fmt.Errorf("hostconfig: creating %s: %w", path, err)
	}
	return true, syncDir(filepath.Dir(path))
}

// writeTemp writes data to a new temporary file next to path and returns
// its name. The file has the given mode (not subject to the umask) and is
// synced to disk.
func writeTemp(path string, data []byte, mode fs.FileMode) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("hostconfig: writing %s: %w", path, err)
	}
	name := f.Name()
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(name)
		return "", fmt.Errorf("hostconfig: writing %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Chmod(mode); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(name)
		return "", fmt.Errorf("hostconfig: writing %s: %w", path, err)
	}
	return name, nil
}

// syncDir fsyncs a directory so a rename or link in it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("hostconfig: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("hostconfig: syncing %s: %w", dir, err)
	}
	return nil
}
