package ingest

import "encoding/json"

// CurrentReceiverState is a server's receiver state for status and check: fromDaemon
// when the daemon runs a receiver for the server (its /v1/info decodes the state as a
// map: this gives it its type back), else what a receiver last wrote to
// streamingDir/receiver.state (marked not running when no receiver holds the
// directory). ok is false when the server has never streamed.
func CurrentReceiverState(fromDaemon any, streamingDir string) (st ReceiverState, ok bool) {
	if fromDaemon != nil {
		if s, ok := fromDaemon.(ReceiverState); ok {
			return s, true
		}
		if b, err := json.Marshal(fromDaemon); err == nil && json.Unmarshal(b, &st) == nil {
			return st, true
		}
	}
	st, ok, err := ReadReceiverState(streamingDir)
	if err != nil || !ok {
		return ReceiverState{}, false
	}
	return st, true
}
