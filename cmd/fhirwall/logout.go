package main

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

const (
	// logFlushEvery is the longest a log line waits to be written.
	logFlushEvery = 100 * time.Millisecond
	// logBufferSize is how much is gathered at most before a write.
	logBufferSize = 32 << 10
)

// logWriter gathers log lines and writes them together, as nginx's
// access_log buffer does: one write(2) per request line cost ~1.7% of the
// gateway's CPU on 2 KB reads under load. A line waits at most
// logFlushEvery; lines of level WARN and above are written at once (see
// flushOnWarn), and Close writes what is left. The log is for operators:
// the record of every access is the audit store, which never waits.
type logWriter struct {
	mu     sync.Mutex
	out    io.Writer
	buf    []byte
	timer  *time.Timer
	armed  bool // the timer will flush what buf holds
	closed bool
}

func newLogWriter(out io.Writer) *logWriter { return &logWriter{out: out} }

// Write takes one log line (slog writes each record in one call).
func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.out.Write(p)
	}
	if len(w.buf)+len(p) > logBufferSize {
		w.flushLocked()
	}
	w.buf = append(w.buf, p...)
	if !w.armed {
		w.armed = true
		if w.timer == nil {
			w.timer = time.AfterFunc(logFlushEvery, w.Flush)
		} else {
			w.timer.Reset(logFlushEvery)
		}
	}
	return len(p), nil
}

// Flush writes what is gathered.
func (w *logWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
}

func (w *logWriter) flushLocked() {
	if len(w.buf) > 0 {
		// A failing log destination cannot be reported anywhere: the
		// lines are dropped, the gateway goes on.
		_, _ = w.out.Write(w.buf)
		w.buf = w.buf[:0]
	}
	if w.buf == nil || cap(w.buf) > 2*logBufferSize {
		w.buf = make([]byte, 0, logBufferSize)
	}
	w.armed = false
}

// Close writes what is left; later lines are written at once.
func (w *logWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
	if w.timer != nil {
		w.timer.Stop()
	}
	w.closed = true
	return nil
}

// flushOnWarn writes a record of level WARN or above, and what was
// gathered before it, as soon as it is logged: an operator watching for
// trouble must not wait for it.
type flushOnWarn struct {
	slog.Handler
	w *logWriter
}

func (h flushOnWarn) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		h.w.Flush()
	}
	return err
}

func (h flushOnWarn) WithAttrs(as []slog.Attr) slog.Handler {
	return flushOnWarn{h.Handler.WithAttrs(as), h.w}
}

func (h flushOnWarn) WithGroup(name string) slog.Handler {
	return flushOnWarn{h.Handler.WithGroup(name), h.w}
}

// newGatewayLogger is the JSON logger of a serving gateway, writing to out
// through a logWriter; close it after the last line.
func newGatewayLogger(out io.Writer) (*slog.Logger, io.Closer) {
	w := newLogWriter(out)
	return slog.New(flushOnWarn{slog.NewJSONHandler(w, nil), w}), w
}
