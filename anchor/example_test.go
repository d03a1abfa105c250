package anchor

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coldchain/coldchain/anchor/bundle"
	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/record"
)

var update = flag.Bool("update", false, "rewrite anchor/bundle/testdata from the Service")

// exampleService logs the worked example of docs/PROOFS.md: shipment
// SHP-2026-0042 anchored in epoch 1 with two readings, then in epoch 2 with
// a handover more, beside SHP-2026-0043.
func exampleService(t *testing.T) (*Service, *fakeChain) {
	clk, chain := newClock(), newFakeChain()
	s := openService(t, t.TempDir(), testConfig(), chain, clk)
	t.Cleanup(func() { _ = s.Close() })
	r1 := record.Reading{Shipment: "SHP-2026-0042", Device: "reefer-7", Seq: 1, Time: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC),
		TempC: 4.7, Reefer: record.Reefer{SetpointC: record.Some(5.0), Mode: record.ModeCooling}}
	r2 := r1
	r2.Seq, r2.Time, r2.TempC = 2, r1.Time.Add(time.Minute), 4.9
	h := record.Handover{ID: "HO-SIN-0001", Shipment: "SHP-2026-0042", Time: time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC),
		Site: "SIN-CHANGI-T3", Kind: record.HandoverRelease, FromParty: "Changi Cold Hub", ToParty: "Emirates SkyCargo", Seal: "EK-77120"}
	r3 := record.Reading{Shipment: "SHP-2026-0043", Device: "logger-3", Seq: 17, Time: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC), TempC: 5.1}
	msg := func(kind record.Kind, seq uint64, id, subject string, data []byte) journal.Msg {
		return journal.Msg{Kind: kind, Seq: seq, ID: id, Subject: subject, Data: data}
	}
	must(t, s.apply(context.Background(), record.KindReading, []journal.Msg{
		msg(record.KindReading, 1, r1.ID(), journal.SubjectReading(r1.Shipment, r1.Device), r1.AppendCanonical(nil)),
		msg(record.KindReading, 2, r2.ID(), journal.SubjectReading(r2.Shipment, r2.Device), r2.AppendCanonical(nil)),
	}))
	anchorNow(t, s, clk)
	must(t, s.apply(context.Background(), record.KindHandover, []journal.Msg{
		msg(record.KindHandover, 1, h.ID, journal.SubjectHandover(h.Shipment), h.AppendCanonical(nil)),
	}))
	must(t, s.apply(context.Background(), record.KindReading, []journal.Msg{
		msg(record.KindReading, 3, r3.ID(), journal.SubjectReading(r3.Shipment, r3.Device), r3.AppendCanonical(nil)),
	}))
	anchorNow(t, s, clk)
	return s, chain
}

// signedExample is the key of the signed example's device logger-9.
var signedExample = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))

// signedExampleService logs shipment SHP-2026-0050 of device logger-9,
// which signs its readings: two signed, then one sent before its key was
// registered (unsigned), anchored in epoch 1.
func signedExampleService(t *testing.T) (*Service, *fakeChain) {
	clk, chain := newClock(), newFakeChain()
	s := openService(t, t.TempDir(), testConfig(), chain, clk)
	t.Cleanup(func() { _ = s.Close() })
	pub := signedExample.Public().(ed25519.PublicKey)
	s.SetDeviceKeys(func(device string) []bundle.DeviceKey {
		if device != "logger-9" {
			return nil
		}
		return []bundle.DeviceKey{{Device: device, PublicKey: pub, Added: time.Date(2026, 2, 20, 0, 0, 0, 0, time.UTC)}}
	})
	var msgs []journal.Msg
	for i, temp := range []float64{5.1, 5.3, 5.2} {
		r := record.Reading{Shipment: "SHP-2026-0050", Device: "logger-9", Seq: uint64(i + 1), Time: time.Date(2026, 3, 2, 8, i, 0, 0, time.UTC), TempC: temp}
		if i < 2 {
			r.Sig = ed25519.Sign(signedExample, r.AppendSigned(nil))
		}
		msgs = append(msgs, journal.Msg{Kind: record.KindReading, Seq: uint64(i + 1), ID: r.ID(),
			Subject: journal.SubjectReading(r.Shipment, r.Device), Data: r.AppendCanonical(nil)})
	}
	must(t, s.apply(context.Background(), record.KindReading, msgs))
	anchorNow(t, s, clk)
	return s, chain
}

// TestExampleBundles pins the bundles of the worked example byte for byte;
// anchor/bundle's tests read them as known answers. Regenerate with
//
//	go test ./anchor/ -run '^TestExampleBundles$' -update
func TestExampleBundles(t *testing.T) {
	s, chain := exampleService(t)
	signed, signedChain := signedExampleService(t)
	for name, c := range map[string]struct {
		s     *Service
		chain *fakeChain
		ship  string
		opts  ProofOptions
	}{
		"full.json":   {s, chain, "SHP-2026-0042", ProofOptions{Since: 2}},
		"record.json": {s, chain, "SHP-2026-0042", ProofOptions{Record: "HO-SIN-0001"}},
		"signed.json": {signed, signedChain, "SHP-2026-0050", ProofOptions{}},
	} {
		b := verified(t, c.s, c.chain, c.ship, c.opts)
		var buf bytes.Buffer
		must(t, bundle.Encode(&buf, b))
		path := filepath.Join("bundle", "testdata", name)
		if *update {
			must(t, os.WriteFile(path, buf.Bytes(), 0o644))
			continue
		}
		want, err := os.ReadFile(path)
		must(t, err)
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("%s differs from the Service's bundle:\n%s", path, buf.Bytes())
		}
	}
}
