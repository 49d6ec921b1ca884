package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/taskbridge-go/taskbridge"
)

// AttachmentSink stores the bytes of uploaded files while a multipart create
// request is read. Implementations must be safe for concurrent use.
//
// For each file part the handler calls Create, streams the part's bytes into
// the returned writer and closes it. The file's ref ends up in
// [taskbridge.Attachment].Ref, where the executor finds it. When the request
// fails (a limit, a validation error, a refused create) or is deduplicated
// (the existing task keeps its own files), the handler calls Discard for
// every ref Create returned, including files whose writing failed. Files of
// created tasks are never discarded by the handler: the executor or the host
// owns them from then on. Every sink is a [taskbridge.AttachmentDiscarder]:
// pass it as taskbridge.Config.Attachments too, and retention removes the
// files of the tasks it deletes.
type AttachmentSink interface {
	// Create starts storing one file, returning the ref that will locate it
	// (a path, an object key) and the writer for its bytes.
	Create(ctx context.Context, auth taskbridge.AuthContext, info taskbridge.UploadInfo) (ref string, w io.WriteCloser, err error)
	// Discard deletes the file stored under ref. Deleting a missing file is
	// not an error.
	Discard(ctx context.Context, ref string) error
}

// TempDirSink is the default [AttachmentSink]: it spools every file to a
// new private file (mode 0600) in Dir, and the ref is the file's path.
// The handler removes the files of requests that create no task; the files
// of created tasks stay until the executor deletes them (Discard) or
// retention does (taskbridge.Config.Attachments). A process that stops
// while uploads are arriving leaves their partial files: give the sink a
// directory of its own and clear it when the process starts or stops.
type TempDirSink struct {
	// Dir is the directory for the files. Defaults to os.TempDir().
	Dir string
}

func (s *TempDirSink) dir() string {
	if s.Dir == "" {
		return os.TempDir()
	}
	return s.Dir
}

// Create implements [AttachmentSink].
func (s *TempDirSink) Create(_ context.Context, _ taskbridge.AuthContext, _ taskbridge.UploadInfo) (string, io.WriteCloser, error) {
	f, err := os.CreateTemp(s.dir(), "taskbridge-upload-*")
	if err != nil {
		return "", nil, fmt.Errorf("httpapi: spooling upload: %w", err)
	}
	return f.Name(), f, nil
}

var _ taskbridge.AttachmentDiscarder = (*TempDirSink)(nil)

// Discard implements [AttachmentSink] and [taskbridge.AttachmentDiscarder].
// It only removes files in Dir.
func (s *TempDirSink) Discard(_ context.Context, ref string) error {
	dir, err := filepath.Abs(s.dir())
	if err != nil {
		return fmt.Errorf("httpapi: discarding upload: %w", err)
	}
	path, err := filepath.Abs(ref)
	if err != nil || filepath.Dir(path) != dir {
		return fmt.Errorf("httpapi: discarding upload: %q is not in %s", ref, dir)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("httpapi: discarding upload: %w", err)
	}
	return nil
}
