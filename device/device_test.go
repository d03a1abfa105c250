package device

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/coldchain/coldchain/embedded/natsserver"
)

var t0 = time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)

func cal(hash byte, from time.Time, months int) Calibration {
	return Calibration{Lab: "SGS Shenzhen Metrology", Accreditation: "ISO/IEC 17025, CNAS L0599", Reference: "Fluke 1524 + 5615 PRT",
		CertSHA256: strings.Repeat(fmt.Sprintf("%02x", hash), 32), CalibratedAt: from, DueAt: from.AddDate(0, months, 0), UncertaintyC: 0.1}
}

func TestValidate(t *testing.T) {
	good := Device{ID: "L1", Serial: "SN-1", Calibrations: []Calibration{cal(1, t0, 12)}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Device){
		"id":          func(d *Device) { d.ID = "L 1" },
		"serial":      func(d *Device) { d.Serial = "" },
		"control":     func(d *Device) { d.Model = "a\nb" },
		"hash":        func(d *Device) { d.Calibrations[0].CertSHA256 = "ABC" },
		"window":      func(d *Device) { d.Calibrations[0].DueAt = t0 },
		"no due":      func(d *Device) { d.Calibrations[0].DueAt = time.Time{} },
		"uncertainty": func(d *Device) { d.Calibrations[0].UncertaintyC = 0 },
		"lab":         func(d *Device) { d.Calibrations[0].Lab = "" },
	} {
		d := good
		d.Calibrations = []Calibration{good.Calibrations[0]}
		mut(&d)
		if err := d.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestMergeAndAt(t *testing.T) {
	d, err := Merge(nil, Device{ID: "L1", Serial: "SN-1", Model: "TempTale", Calibrations: []Calibration{cal(2, t0.AddDate(1, 0, 0), 12)}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	// An older calibration added later sorts first; the same certificate twice counts once.
	d, err = Merge(&d, Device{ID: "L1", Serial: "SN-1", Calibrations: []Calibration{cal(1, t0, 12), cal(2, t0.AddDate(1, 0, 0), 12)}}, t0)
	if err != nil || len(d.Calibrations) != 2 || !d.Calibrations[0].CalibratedAt.Equal(t0) || d.Model != "TempTale" {
		t.Fatalf("%+v %v", d, err)
	}
	if _, err := Merge(&d, Device{ID: "L1", Serial: "SN-2"}, t0); !errors.Is(err, ErrSerialMismatch) {
		t.Errorf("other serial: %v", err)
	}
	for _, tc := range []struct {
		at     time.Time
		ok     bool
		status string
	}{
		{t0.Add(-time.Hour), false, "not calibrated yet"},
		{t0, true, "calibrated 2026-01-10"},
		{t0.AddDate(1, 0, 0).Add(-time.Second), true, "calibrated 2026-01-10"},
		{t0.AddDate(1, 0, 0), true, "calibrated 2027-01-10"},
		{t0.AddDate(2, 0, 0), false, "calibration expired (due 2028-01-10"},
	} {
		_, ok := d.At(tc.at)
		if ok != tc.ok || !strings.HasPrefix(d.Status(tc.at), tc.status) {
			t.Errorf("at %s: %v %q, want %v %q", tc.at, ok, d.Status(tc.at), tc.ok, tc.status)
		}
	}
	none := Device{ID: "L2", Serial: "S"}
	if _, ok := none.At(t0); ok || none.Status(t0) != "never calibrated" {
		t.Error("an uncalibrated device is in calibration")
	}
}

func openRegistry(t *testing.T) *Registry {
	t.Helper()
	ns, err := natsserver.Start(natsserver.Config{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), MaxPayload: 1 << 20}, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	r, err := OpenRegistry(context.Background(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRegistry registers devices durably: a second registration with
// another serial is refused, and calibrations added at the same time by
// several writers are all kept (compare-and-set on the revision).
func TestRegistry(t *testing.T) {
	ctx := context.Background()
	r := openRegistry(t)
	if _, err := r.Get(ctx, "L1"); !errors.Is(err, ErrUnknown) {
		t.Fatalf("unknown device: %v", err)
	}
	if _, err := r.Register(ctx, Device{ID: "L1", Serial: "SN-1", Model: "TempTale Ultra"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Register(ctx, Device{ID: "L1", Serial: "SN-9"}); !errors.Is(err, ErrSerialMismatch) {
		t.Fatalf("registered twice with different serials: %v", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := r.Register(ctx, Device{ID: "L1", Serial: "SN-1", Calibrations: []Calibration{cal(byte(i+1), t0.AddDate(0, i, 0), 12)}})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	d, err := r.Get(ctx, "L1")
	if err != nil || len(d.Calibrations) != 8 || d.Model != "TempTale Ultra" || d.Serial != "SN-1" {
		t.Fatalf("%+v %v: want 8 calibrations kept", d, err)
	}
	w, err := r.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	<-w.Ready()
	if d := w.Get("L1"); d == nil || len(d.Calibrations) != 8 {
		t.Fatalf("watched L1: %+v", d)
	}
	if _, err := r.Register(ctx, Device{ID: "L0", Serial: "SN-0"}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); w.Get("L0") == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the watch did not see L0 registered")
		}
	}
	if w.Get("L9") != nil {
		t.Error("an unregistered device is watched")
	}
	list, err := r.List(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "L0" || list[1].ID != "L1" {
		t.Fatalf("list %v %v", list, err)
	}
}

// TestCovers: a range is covered when windows joined end to start hold
// at every instant of it, its end included.
func TestCovers(t *testing.T) {
	d := Device{ID: "L1", Serial: "S", Calibrations: []Calibration{cal(1, t0, 6), cal(2, t0.AddDate(0, 6, 0), 6), cal(3, t0.AddDate(2, 0, 0), 6)}}
	due := t0.AddDate(1, 0, 0) // the second window's end
	for _, tc := range []struct {
		name     string
		from, to time.Time
		want     bool
	}{
		{"inside one window", t0.AddDate(0, 1, 0), t0.AddDate(0, 2, 0), true},
		{"across two joined windows", t0, due.Add(-time.Nanosecond), true},
		{"up to the due instant", t0, due, false},
		{"into the gap", t0.AddDate(0, 11, 0), t0.AddDate(1, 1, 0), false},
		{"in the gap", t0.AddDate(1, 1, 0), t0.AddDate(1, 2, 0), false},
		{"before the first", t0.Add(-time.Hour), t0.Add(time.Hour), false},
		{"the last window", t0.AddDate(2, 0, 0), t0.AddDate(2, 5, 0), true},
	} {
		if got := d.Covers(tc.from, tc.to); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if (&Device{ID: "L2", Serial: "S"}).Covers(t0, t0) {
		t.Error("a device never calibrated covers nothing")
	}
}
