package ingest

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// receiverRun is what the supervisor runs: a *Receiver (a fake in tests).
type receiverRun interface {
	Run(ctx context.Context) error
	State() ReceiverState
}

// ReceiverRetry is how long the supervisor waits before it runs a failed receiver again.
const ReceiverRetry = 30 * time.Second

// SuperviseReceivers runs one receiver per configuration until ctx ends, reporting
// each receiver's state through report (also set as its OnState). A configuration
// NewReceiver refuses is reported with its error and skipped; a Run that fails (another
// receiver, such as a foreground receive-wal, holds the streaming directory) is run
// again after ReceiverRetry.
func SuperviseReceivers(ctx context.Context, cfgs []ReceiverConfig, report func(server string, st ReceiverState), log *slog.Logger) {
	superviseReceivers(ctx, cfgs, report, log, ReceiverRetry, func(c ReceiverConfig) (receiverRun, error) { return NewReceiver(c) })
}

func superviseReceivers(ctx context.Context, cfgs []ReceiverConfig, report func(string, ReceiverState), log *slog.Logger,
	retry time.Duration, newReceiver func(ReceiverConfig) (receiverRun, error)) {
	var wg sync.WaitGroup
	for _, rc := range cfgs {
		name := rc.Server
		rc.OnState = func(st ReceiverState) { report(name, st) }
		rcv, err := newReceiver(rc)
		if err != nil {
			log.Error("streaming receiver not started", "server", name, "err", err)
			report(name, ReceiverState{Server: name, Slot: rc.SlotName, LastError: err.Error(), LastErrorAt: time.Now().UTC()})
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				err := rcv.Run(ctx)
				if err == nil || ctx.Err() != nil {
					return
				}
				log.Error("streaming receiver", "server", name, "err", err)
				st := rcv.State()
				st.LastError, st.LastErrorAt = err.Error(), time.Now().UTC()
				report(name, st)
				select {
				case <-ctx.Done():
					return
				case <-time.After(retry):
				}
			}
		}()
	}
	wg.Wait()
}
