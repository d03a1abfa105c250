package record

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
	"time"
)

func addSeeds(f *testing.F) {
	for _, name := range []string{"reading-v1.wire.json", "handover-v1.wire.json", "reading-v1.canonical.json", "handover-v1.canonical.json"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`[` + good + `,` + good + `]`))
	f.Add([]byte(`{"temp_c":NaN}`))
	f.Add([]byte(`{"shipment":"\u00e9\ud83d\ude00"}`))
}

// FuzzDecodeReadings checks that the decoder never panics, that it accepts
// only valid JSON, and that every accepted reading round-trips through its
// canonical encoding: canonical → ParseReading → the same bytes.
func FuzzDecodeReadings(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		recs, rejects, err := DecodeReadings(in, Scope{}, DefaultLimits(), now)
		if err != nil {
			if recs != nil || rejects != nil {
				t.Fatal("records returned with a message error")
			}
			return
		}
		if !json.Valid(in) {
			// The only non-JSON the decoder gets past is a NaN or Infinity
			// word, so it can name the member; that record is rejected.
			notFinite := false
			for _, rj := range rejects {
				notFinite = notFinite || rj.Err.Reason == ReasonNotFinite
			}
			if !notFinite {
				t.Fatalf("accepted invalid JSON %q", in)
			}
		}
		for _, rj := range rejects {
			if rj.Err == nil || rj.Err.Reason == 0 || rj.Err.Detail == "" {
				t.Fatalf("reject without a reason: %+v", rj)
			}
		}
		for i := range recs {
			c := recs[i].AppendCanonical(nil)
			if !json.Valid(c) {
				t.Fatalf("canonical is not JSON: %s", c)
			}
			back, perr := ParseReading(c)
			if perr != nil {
				t.Fatalf("canonical %s does not parse: %v", c, perr)
			}
			if c2 := back.AppendCanonical(nil); !bytes.Equal(c, c2) {
				t.Fatalf("round trip\n%s\n%s", c, c2)
			}
		}
	})
}

// FuzzDecodeHandovers is FuzzDecodeReadings for handovers.
func FuzzDecodeHandovers(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		recs, _, err := DecodeHandovers(in, Scope{}, DefaultLimits(), now)
		if err != nil {
			return
		}
		for i := range recs {
			c := recs[i].AppendCanonical(nil)
			back, perr := ParseHandover(c)
			if perr != nil {
				t.Fatalf("canonical %s does not parse: %v", c, perr)
			}
			if c2 := back.AppendCanonical(nil); !bytes.Equal(c, c2) {
				t.Fatalf("round trip\n%s\n%s", c, c2)
			}
		}
	})
}

// FuzzParseDeviceRecord: a device record read from an untrusted bundle
// either fails with an error or parses to a record whose canonical
// encoding parses back to the same bytes.
func FuzzParseDeviceRecord(f *testing.F) {
	d := DeviceRecord{Shipment: "S1", Device: "L1", Serial: "SN", Revision: 3, Updated: now,
		Calibrations: []Calibration{{Lab: "L", Accreditation: "A", Reference: "R", CertSHA256: "ab", CalibratedAt: now, DueAt: now.Add(time.Hour), UncertaintyC: 0.1}}}
	f.Add(d.AppendCanonical(nil))
	f.Add([]byte(`{"type":"device","v":1}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := ParseDeviceRecord(in)
		if err != nil {
			return
		}
		c := r.AppendCanonical(nil)
		back, err := ParseDeviceRecord(c)
		if err != nil {
			t.Fatalf("canonical %s does not parse: %v", c, err)
		}
		if c2 := back.AppendCanonical(nil); !bytes.Equal(c, c2) {
			t.Fatalf("round trip\n%s\n%s", c, c2)
		}
	})
}
