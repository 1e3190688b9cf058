package main

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// reloadText is what a reloader logs for each outcome.
type reloadText struct {
	cannotRead   string // a file cannot be read; what is in force stays
	unchangedBad string // unchanged since a failed reload; what is in force stays
	unchanged    string // unchanged, and what is in force is its own
	failed       string // a new version is bad; what is in force stays
}

// reloadOutcomes is the bookkeeping shared by the reloaders of files read
// while serving (the rules file, the TLS files): each failure (a new read
// error, a bad version) is logged and counted once, however often it is
// checked, a SIGHUP gets an answer in the log each time, and the metrics
// read the counters without a lock. The owner serialises the calls.
type reloadOutcomes struct {
	log  *slog.Logger
	text reloadText

	readErr string // the last read error; "" once the files read
	badErr  string // why the content last read is not in force; "" if it is

	// Read by the metrics at each scrape.
	lastReload atomic.Int64 // Unix nanoseconds when what is in force was loaded
	errors     atomic.Uint64
	failing    atomic.Bool
}

// readFailed records a read error; what is in force stays.
func (o *reloadOutcomes) readFailed(err error, forced bool, attrs ...any) {
	msg := err.Error()
	o.failing.Store(true)
	if msg != o.readErr {
		o.readErr = msg
		o.errors.Add(1)
	} else if !forced {
		return
	}
	o.log.Warn(o.text.cannotRead, append(attrs, "error", msg)...)
}

// readOK records that the files read, and reports whether they had not.
func (o *reloadOutcomes) readOK() (recovered bool) {
	recovered = o.readErr != ""
	o.readErr = ""
	return recovered
}

// unchanged records content that is what was last read.
func (o *reloadOutcomes) unchanged(recovered, forced bool, attrs ...any) {
	switch {
	case o.badErr != "" && (recovered || forced):
		o.log.Warn(o.text.unchangedBad, append(attrs, "error", o.badErr)...)
	case o.badErr != "":
	case recovered || forced:
		o.failing.Store(false)
		o.log.Info(o.text.unchanged, attrs...)
	default:
		o.failing.Store(false)
	}
}

// parseFailed records a new version that does not load.
func (o *reloadOutcomes) parseFailed(err error, attrs ...any) {
	o.badErr = oneLine(err)
	o.failing.Store(true)
	o.errors.Add(1)
	o.log.Warn(o.text.failed, append(attrs, "error", o.badErr)...)
}

// loaded records a new version put in force; the caller logs it.
func (o *reloadOutcomes) loaded() {
	o.lastReload.Store(time.Now().UnixNano())
	o.badErr = ""
	o.failing.Store(false)
}

// every calls f every interval on a goroutine of its own until stop is
// called; stop returns once f has.
func every(interval time.Duration, f func()) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				f()
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
