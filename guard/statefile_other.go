//go:build !unix

package guard

import (
	"context"
	"errors"
)

// stateFileSupported is false where there is no flock: New refuses a
// StateFile rather than let two writers lose each other's revocations.
const stateFileSupported = false

func lockFile(context.Context, string) (func(), error) {
	return nil, errors.New("guard: no advisory file locks on this platform")
}

func syncDir(string) error { return nil }
