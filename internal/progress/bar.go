package progress

import (
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Interactive reports whether progress should be drawn: stderr is a terminal. Long
// work shows progress there and stays quiet otherwise (cron, pipes, logs).
func Interactive() bool { return term.IsTerminal(int(os.Stderr.Fd())) }

// bar is a byte progress bar on stderr; total <= 0 means unknown.
func bar(desc string, total int64) *progressbar.ProgressBar {
	if total <= 0 {
		total = -1
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowBytes(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

// Adder is a bar of total bytes fed increments (restore, verify).
func Adder(desc string, total int64) func(int64) {
	b := bar(desc, total)
	return func(n int64) { _ = b.Add64(n) }
}

// AdderOnTerminal is Adder's constructor for work of a total learnt later, nil when
// stderr is not a terminal (no progress then).
func AdderOnTerminal(desc string) func(total int64) func(int64) {
	if !Interactive() {
		return nil
	}
	return func(total int64) func(int64) { return Adder(desc, total) }
}

// Setter is a bar of total bytes fed the count done so far, which may pass total (a
// backup's estimate); a negative count ends it.
func Setter(desc string, total int64) func(int64) {
	b := bar(desc, total)
	return func(done int64) {
		if done < 0 {
			_ = b.Finish()
			return
		}
		if b.GetMax64() > 0 && done > b.GetMax64() {
			b.ChangeMax64(done)
		}
		_ = b.Set64(done)
	}
}
