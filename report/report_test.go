package report

import (
	"bytes"
	"math"
	"os"
	"testing"
	"time"

	"github.com/coldchain/coldchain/custody"
	"github.com/coldchain/coldchain/record"
)

func options() Options {
	return Options{Low: 2, High: 8, Profile: "2-8C", Generated: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC), Custody: custody.DefaultConfig()}
}

// TestRenderBundle renders the worked example's bundle: a PDF, the same
// bytes for the same inputs, and a clear error for a selective bundle or
// something that is not a bundle. (That the pages show what they should
// is checked by rendering them: integration/report_test.go.)
func TestRenderBundle(t *testing.T) {
	raw, err := os.ReadFile("../anchor/bundle/testdata/full.json")
	if err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	if err := Render(&a, raw, options()); err != nil {
		t.Fatal(err)
	}
	if err := Render(&b, raw, options()); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(a.Bytes(), []byte("%PDF-1.")) || !bytes.Contains(a.Bytes()[a.Len()-8:], []byte("%%EOF")) || a.Len() < 2000 {
		t.Fatalf("not a PDF: %d bytes, %q…", a.Len(), a.Bytes()[:min(a.Len(), 16)])
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("the same bundle and options gave different bytes")
	}
	one, err := os.ReadFile("../anchor/bundle/testdata/record.json")
	if err != nil {
		t.Fatal(err)
	} else {
		if err := Render(&bytes.Buffer{}, one, options()); err == nil {
			t.Error("a selective bundle was rendered")
		}
	}
	if err := Render(&bytes.Buffer{}, []byte(`{"format":`), options()); err == nil {
		t.Error("truncated JSON was rendered")
	}
}

// TestDownsample keeps each bucket's extremes in time order and leaves
// gaps as gaps.
func TestDownsample(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var rs []record.Reading
	for i := range 600 {
		temp := 5.0
		if i == 123 {
			temp = 11.5 // a one-reading spike must survive
		}
		at := t0.Add(time.Duration(i) * time.Minute)
		if i >= 300 {
			at = at.Add(5 * time.Hour) // a gap
		}
		rs = append(rs, record.Reading{Device: "L1", Seq: uint64(i), Time: at, TempC: temp})
	}
	segs := downsample(rs, gapLimit(rs), 30*time.Minute)
	if len(segs) != 2 {
		t.Fatalf("%d segments, want 2 (one gap)", len(segs))
	}
	n, peak := 0, 0.0
	for _, seg := range segs {
		for i, r := range seg {
			n++
			peak = math.Max(peak, r.TempC)
			if i > 0 && !seg[i-1].Time.Before(r.Time) {
				t.Fatalf("not in time order at %d", i)
			}
		}
	}
	if peak != 11.5 || n >= len(rs)/4 {
		t.Errorf("%d points kept of %d, peak %.1f; want far fewer and the spike", n, len(rs), peak)
	}
}

// TestMKT: a constant temperature is its own MKT; two equal spans at 5 and
// 25 °C give the USP value (ΔH/R = 10,000 K), above their mean.
func TestMKT(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(m int, c float64) record.Reading {
		return record.Reading{Time: t0.Add(time.Duration(m) * time.Minute), TempC: c}
	}
	if m, ok := mkt([]record.Reading{at(0, 5), at(5, 5), at(10, 5)}); !ok || math.Abs(m-5) > 1e-9 {
		t.Errorf("constant: %v %v", m, ok)
	}
	m, _ := mkt([]record.Reading{at(0, 5), at(5, 25), at(10, 25)})
	want := 10000/-math.Log((math.Exp(-10000/278.15)+math.Exp(-10000/298.15))/2) - 273.15
	if math.Abs(m-want) > 1e-9 || m <= 15 {
		t.Errorf("5/25 °C: %v, want %v", m, want)
	}
	if _, ok := mkt([]record.Reading{at(0, 5)}); ok {
		t.Error("one reading has an MKT")
	}
}

// FuzzRender: whatever file coldchain report --bundle is given, it answers
// a PDF or an error, never a crash.
func FuzzRender(f *testing.F) {
	for _, name := range []string{"full.json", "record.json", "signed.json"} {
		if raw, err := os.ReadFile("../anchor/bundle/testdata/" + name); err == nil {
			f.Add(raw)
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var out bytes.Buffer
		if err := Render(&out, raw, options()); err == nil && !bytes.HasPrefix(out.Bytes(), []byte("%PDF-")) {
			t.Fatalf("no error and no PDF for %q", raw)
		}
	})
}
