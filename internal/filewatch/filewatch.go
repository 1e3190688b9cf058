// Package filewatch tells when a file may have changed, by polling its stat,
// for what denylist and the binary's rules file share: a file re-read
// without a restart. Polling needs no fsnotify dependency and is more
// reliable than inotify for this: a Kubernetes ConfigMap update swaps a
// symbolic link (..data) rather than writing the file, so an inotify watch on
// the old file sees nothing, while the path is re-resolved on every stat
// here; editors and configuration tools replace files by renaming; network
// and overlay file systems deliver no inotify events at all.
//
// # Security
//
// A file larger than the limit is refused before it is read whole, and read
// through a limit in case it grows meanwhile. Only a regular file (after
// links are followed) is read. The caller decides what a changed file means:
// [File.Read] only says it may have changed, and a caller compares contents
// (a hash) to know.
package filewatch

import (
	"fmt"
	"io"
	"os"
	"time"
)

// Settle is how long after a file's modification time a read is taken to
// have seen every write of that time: file systems keep modification times
// to a second or two on some platforms, so a file rewritten within the same
// tick, with the same size, would otherwise look unchanged.
const Settle = 2 * time.Second

// File reads a file when its stat says it may have changed: its
// modification time or size differs from the last read, or the last read
// came within [Settle] of its modification time. Its methods must not be
// called concurrently (the caller serialises its reloads).
type File struct {
	path string
	max  int64

	mod    time.Time
	size   int64
	readAt time.Time // when the file was last read
}

// New returns a File for path, read whole only if at most max bytes.
func New(path string, max int64) *File { return &File{path: path, max: max} }

// Path is the watched path, for logs.
func (f *File) Path() string { return f.path }

// Read returns the file's bytes, or nil when its stat says it has not
// changed since the last read. A symbolic link is followed on every call.
// Errors name the path and say what failed, without a package prefix.
func (f *File) Read() ([]byte, error) {
	fi, err := os.Stat(f.path) // follows links: a ConfigMap swap is seen
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", f.path)
	}
	if fi.ModTime().Equal(f.mod) && fi.Size() == f.size && f.readAt.Sub(f.mod) > Settle {
		return nil, nil
	}
	if fi.Size() > f.max {
		return nil, fmt.Errorf("%s is %d bytes, more than the limit of %d", f.path, fi.Size(), f.max)
	}
	now := time.Now()
	file, err := os.Open(f.path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, f.max+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.path, err)
	}
	if int64(len(data)) > f.max {
		return nil, fmt.Errorf("%s is more than the limit of %d bytes", f.path, f.max)
	}
	f.mod, f.size, f.readAt = fi.ModTime(), fi.Size(), now
	return data, nil
}

// Reset forgets the last read, so that the next Read reads the file whatever
// its stat says: for a reload asked for explicitly (SIGHUP), which must not
// miss a file replaced with the same size and modification time.
func (f *File) Reset() { f.mod, f.size, f.readAt = time.Time{}, 0, time.Time{} }
