package simulator

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Publisher is what Run needs of a transport.
type Publisher interface {
	// Publish sends m; it may return before m is acknowledged.
	Publish(ctx context.Context, m *Message) error
	// Flush waits until everything published so far is acknowledged.
	Flush(ctx context.Context) error
}

var (
	_ Publisher = (*MQTT)(nil)
	_ Publisher = (*HTTP)(nil)
)

// RunConfig maps wall time to device time.
type RunConfig struct {
	// Accelerate is how many times faster than wall time device time runs;
	// 1 is real time.
	Accelerate float64
	// Tick is the wall time between two advances of the generator.
	Tick time.Duration
	// Progress receives a progress line every ProgressEvery; nil for none.
	Progress      io.Writer
	ProgressEvery time.Duration
	// FlushTimeout bounds the wait for the last acknowledgements.
	FlushTimeout time.Duration
}

// Report is what a run did.
type Report struct {
	// DeviceTime is how far device time got.
	DeviceTime time.Time
	Counts     Counts
	Acked      int64
	Errors     int64
	Mismatches int64
	LastError  string
	Wall       time.Duration
}

// Run advances g with wall time — device time g's Start at the wall time
// Run begins, then Accelerate times faster — and publishes every message
// through pub as it falls due, recording it in rec. It returns when device
// time reaches g.End or ctx ends, once the last messages are acknowledged
// (or FlushTimeout passed). now is the wall clock.
func Run(ctx context.Context, g *Generator, pub Publisher, rec *Recorder, stats *Stats, rc RunConfig, now func() time.Time) (Report, error) {
	if rc.Accelerate < 1 {
		return Report{}, fmt.Errorf("accelerate: must be at least 1, got %g", rc.Accelerate)
	}
	if rc.Tick <= 0 {
		rc.Tick = 100 * time.Millisecond
	}
	if rc.ProgressEvery <= 0 {
		rc.ProgressEvery = time.Second
	}
	if rc.FlushTimeout <= 0 {
		rc.FlushTimeout = 30 * time.Second
	}
	wall0 := now()
	start := g.cfg.Start
	var (
		dt       = start
		lastLine = wall0
		err      error
	)
	progress := func(final bool) {
		if rc.Progress == nil {
			return
		}
		c := rec.Counts()
		end := "\r"
		if final {
			end = "\n"
		}
		fmt.Fprintf(rc.Progress, "\rdevice time %s  day %.1f/%.1f  messages %d  readings %d  acked %d  rejected %d  errors %d  %s",
			dt.UTC().Format("2006-01-02 15:04"), dt.Sub(start).Hours()/24, g.end.Sub(start).Hours()/24,
			c.Messages, c.Readings, stats.Acked.Load(), c.Rejected, stats.Errors.Load(), end)
	}
loop:
	for {
		w := now()
		dt = start.Add(time.Duration(float64(w.Sub(wall0)) * rc.Accelerate))
		if dt.After(g.end) {
			dt = g.end
		}
		msgs := g.Advance(dt)
		for i := range msgs {
			if err = pub.Publish(ctx, &msgs[i]); err != nil {
				break loop
			}
			rec.Observe(&msgs[i])
		}
		if w.Sub(lastLine) >= rc.ProgressEvery {
			progress(false)
			lastLine = w
		}
		if !dt.Before(g.end) {
			break
		}
		select {
		case <-ctx.Done():
			break loop
		case <-time.After(rc.Tick):
		}
	}
	if ctx.Err() != nil {
		err = nil // interrupted: report what was sent
	}
	fctx, cancel := context.WithTimeout(context.Background(), rc.FlushTimeout)
	defer cancel()
	if ferr := pub.Flush(fctx); ferr != nil && err == nil {
		err = fmt.Errorf("waiting for acknowledgements: %w", ferr)
	}
	progress(true)
	return Report{DeviceTime: dt, Counts: rec.Counts(), Acked: stats.Acked.Load(), Errors: stats.Errors.Load(),
		Mismatches: stats.Mismatches.Load(), LastError: stats.LastError(), Wall: now().Sub(wall0)}, err
}
