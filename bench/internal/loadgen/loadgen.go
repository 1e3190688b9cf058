// Package loadgen is the constant-rate load generator of the fixed-rate
// latency runner and of the soak: requests are scheduled at a fixed rate
// whatever the server does, and each one's latency is measured from the time
// it was scheduled to be sent, not from when it was sent. A server that
// stalls for a second is then charged for every request that should have
// gone out during that second (no coordinated omission: a closed-loop tool
// such as wrk waits for the stall to end before it sends more, and records
// one slow request where users saw thousands).
//
// Workers claim the next schedule slot from a shared counter, sleep until
// its time and send. A worker stuck on a slow answer leaves the next slots to
// the others, so the schedule holds as long as some worker is free; when none
// is, the slots wait, are sent late, and count in [Stats.Late] (the generator
// itself fell behind): a run with many late slots measured the generator, not
// only the server.
package loadgen

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Config is one run of the generator.
type Config struct {
	// Rate is the requests per second to schedule. 0 means closed loop:
	// each worker sends its next request as soon as the last one is
	// answered, to measure capacity.
	Rate float64
	// Duration is how long slots are scheduled for.
	Duration time.Duration
	// Workers is how many requests may be in flight at once; 0 means 64.
	Workers int
	// LateAfter is how long after its scheduled time a slot may start
	// before it counts as late; 0 means 1 ms.
	LateAfter time.Duration
}

// Send sends the request of one slot; scheduled is when it should have been
// sent (the start of its latency). Worker w of Config.Workers calls it, one
// slot at a time, so per-worker state (a connection, a histogram) needs no
// lock.
type Send func(ctx context.Context, w int, slot int64, scheduled time.Time)

// Stats says whether the generator kept its schedule.
type Stats struct {
	Slots   int64         // slots sent
	Late    int64         // slots that started more than LateAfter after their time
	MaxLag  time.Duration // the longest a slot started after its time
	Elapsed time.Duration // from the first slot's time to the last answer
}

// LateShare is Late / Slots.
func (s Stats) LateShare() float64 {
	if s.Slots == 0 {
		return 0
	}
	return float64(s.Late) / float64(s.Slots)
}

// Run schedules slots for cfg.Duration (or until ctx is done) and returns
// once every slot sent has been answered.
func Run(ctx context.Context, cfg Config, send Send) Stats {
	workers := cfg.Workers
	if workers <= 0 {
		workers = 64
	}
	lateAfter := cfg.LateAfter
	if lateAfter <= 0 {
		lateAfter = time.Millisecond
	}
	var period time.Duration
	total := int64(-1) // closed loop: until the end
	if cfg.Rate > 0 {
		period = time.Duration(float64(time.Second) / cfg.Rate)
		total = int64(cfg.Duration.Seconds() * cfg.Rate)
	}
	start := time.Now()
	end := start.Add(cfg.Duration)
	var next, sent, late, lagMax atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			for ctx.Err() == nil {
				slot := next.Add(1) - 1
				var at time.Time
				if total >= 0 {
					if slot >= total {
						return
					}
					at = start.Add(time.Duration(slot) * period)
					if wait := time.Until(at); wait > 0 {
						timer.Reset(wait)
						select {
						case <-ctx.Done():
							return
						case <-timer.C:
						}
					}
				} else {
					at = time.Now()
					if at.After(end) {
						return
					}
				}
				lag := time.Since(at)
				if lag > lateAfter {
					late.Add(1)
				}
				for {
					m := lagMax.Load()
					if int64(lag) <= m || lagMax.CompareAndSwap(m, int64(lag)) {
						break
					}
				}
				sent.Add(1)
				send(ctx, w, slot, at)
			}
		})
	}
	wg.Wait()
	return Stats{Slots: sent.Load(), Late: late.Load(), MaxLag: time.Duration(lagMax.Load()), Elapsed: time.Since(start)}
}
