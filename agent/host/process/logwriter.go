package process

import (
	"bytes"
	"log/slog"
	"sync"

	"github.com/depai/depai/agent/host"
)

// maxLine bounds one logged line: a plugin printing without newlines must
// not grow the agent's memory.
const maxLine = 16 << 10

// lineLogger turns a plugin's output stream into one info record per line,
// tagged with the plugin's name and the stream.
type lineLogger struct {
	log   *slog.Logger
	limit *host.OutputLimiter

	mu   sync.Mutex
	buf  []byte
	last string // the last line, for an error that explains a failed start
}

func newLineLogger(log *slog.Logger, limit *host.OutputLimiter) *lineLogger {
	return &lineLogger{log: log, limit: limit}
}

func (w *lineLogger) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			if len(w.buf) >= maxLine {
				w.flush()
			}
			break
		}
		w.buf = append(w.buf, p[:i]...)
		p = p[i+1:]
		w.flush()
	}
	return n, nil
}

func (w *lineLogger) flush() {
	line := bytes.TrimRight(w.buf, "\r")
	if len(line) > 0 {
		if w.limit.Allow(len(line)) {
			w.log.Info(string(line))
		}
		w.last = string(line)
	}
	w.buf = w.buf[:0]
}

// lastLine is the last complete line written, or "".
func (w *lineLogger) lastLine() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}
