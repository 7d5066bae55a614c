//go:build unix

package guard

import (
	"context"
	"errors"
	"os"
	"syscall"
	"time"
)

const stateFileSupported = true

// lockFile takes an exclusive flock on path (created 0600 if missing),
// waiting until ctx is done. flock belongs to the open file description, so
// two Guards in one process exclude each other as two processes do. The
// lock is released by unlock, or by the kernel if the process dies.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	fh, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	fd := int(fh.Fd())
	for {
		err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(fd, syscall.LOCK_UN)
				_ = fh.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = fh.Close()
			return nil, err
		}
		// Non-blocking attempts in a loop, because a blocking flock cannot
		// be cancelled and a stuck holder must not hang a Revoke.
		select {
		case <-ctx.Done():
			_ = fh.Close()
			return nil, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
