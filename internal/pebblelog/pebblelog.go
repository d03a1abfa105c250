// Package pebblelog sends the log of a Pebble database to zap, for every
// part that keeps one (the dedup index, the embedded store, the shipment
// logs).
package pebblelog

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"
)

// New returns a Pebble logger writing to log: Pebble's routine messages at
// debug level, its errors as errors.
func New(log *zap.Logger) pebble.Logger { return logger{log.Sugar()} }

type logger struct{ s *zap.SugaredLogger }

func (l logger) Infof(format string, args ...any)  { l.s.Debugf(format, args...) }
func (l logger) Errorf(format string, args ...any) { l.s.Errorf(format, args...) }

// Fatalf logs and panics: Pebble calls it for invariant violations, and a
// library does not exit the process.
func (l logger) Fatalf(format string, args ...any) {
	l.s.Errorf(format, args...)
	panic(fmt.Sprintf(format, args...))
}
