package bundle_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/coldchain/coldchain/anchor/bundle"
	"github.com/coldchain/coldchain/merkle"
)

// claims is what a bundle asserts about its record, for comparing the one
// a compact proof rebuilds with the JSON original.
type claims struct {
	shipment             string
	size, index          uint64
	root, entries, epoch merkle.Hash
	number, n, at        uint64
	prev                 merkle.Hash
	anchor               bundle.Anchor
}

func claimsOf(b *bundle.Bundle) claims {
	a := b.Anchor
	a.Contract, a.Tx = strings.ToLower(a.Contract), strings.ToLower(a.Tx)
	return claims{b.Shipment, b.TreeSize, b.Record.Index, b.Root, b.Epoch.EntriesRoot, b.Epoch.Root,
		b.Epoch.Number, b.Epoch.Entries, b.Epoch.Index, b.Epoch.Prev, a}
}

// TestCompactRoundTrip: the worked example's one-record bundle as a
// compact proof rebuilds, from the record's bytes, every root and the
// anchor of the JSON bundle, and verifies.
func TestCompactRoundTrip(t *testing.T) {
	b := load(t, "record.json")
	proof, err := bundle.MarshalCompact(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bundle.IsCompact(proof) {
		t.Fatalf("the proof starts %q", proof[:4])
	}
	got, err := bundle.UnmarshalCompact(proof, []byte(b.Record.Data))
	if err != nil {
		t.Fatal(err)
	}
	if claimsOf(got) != claimsOf(b) || !reflect.DeepEqual(got.Record, b.Record) {
		t.Fatalf("the compact proof rebuilds\n%+v\nwant\n%+v", claimsOf(got), claimsOf(b))
	}
	if _, err := bundle.Verify(got); err != nil {
		t.Fatalf("the rebuilt bundle: %v", err)
	}
	t.Logf("compact proof %d bytes; the JSON bundle %d", len(proof), len(encode(t, b)))

	// Another record leads to another epoch root: the anchor check fails.
	other, err := bundle.UnmarshalCompact(proof, []byte(strings.Replace(b.Record.Data, "EK-77120", "EK-77121", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if other.Epoch.Root == b.Epoch.Root {
		t.Fatal("an altered record leads to the anchored epoch root")
	}
}

func encode(t *testing.T, b *bundle.Bundle) []byte {
	var buf bytes.Buffer
	if err := bundle.Encode(&buf, b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestCompactEveryByteMatters: the encoding is canonical, so each flipped
// bit either makes the proof malformed or makes it claim something else;
// truncated, extended or padded proofs are refused.
func TestCompactEveryByteMatters(t *testing.T) {
	b := load(t, "record.json")
	proof, err := bundle.MarshalCompact(b)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte(b.Record.Data)
	want := claimsOf(b)
	refused, changed := 0, 0
	for i := range proof {
		for bit := range 8 {
			p := bytes.Clone(proof)
			p[i] ^= 1 << bit
			got, err := bundle.UnmarshalCompact(p, data)
			switch {
			case err != nil:
				if !errors.Is(err, bundle.ErrMalformed) && !errors.Is(err, bundle.ErrShipmentRoot) && !errors.Is(err, bundle.ErrEpochEntry) {
					t.Fatalf("byte %d bit %d: %v, want a malformed-proof error", i, bit, err)
				}
				refused++
			case claimsOf(got) == want:
				t.Fatalf("byte %d bit %d flipped: the proof still claims the same", i, bit)
			default:
				changed++
			}
		}
	}
	for n := range len(proof) {
		if _, err := bundle.UnmarshalCompact(proof[:n], data); err == nil {
			t.Fatalf("the first %d of %d bytes decode", n, len(proof))
		}
	}
	if _, err := bundle.UnmarshalCompact(append(bytes.Clone(proof), 0), data); err == nil {
		t.Fatal("a trailing byte is accepted")
	}
	// tree_size 3 as a two-byte varint (0x83 0x00): same value, not canonical.
	at := len(bundle.CompactMagic) + 1 + len(b.Shipment)
	padded := append(append(bytes.Clone(proof[:at]), 0x83, 0x00), proof[at+1:]...)
	if v, _ := binary.Uvarint(padded[at:]); v != 3 {
		t.Fatalf("test setup: padded tree_size decodes to %d", v)
	}
	if _, err := bundle.UnmarshalCompact(padded, data); err == nil {
		t.Fatal("a non-canonical varint is accepted")
	}
	t.Logf("%d bit flips: %d refused, %d claim something else", 8*len(proof), refused, changed)
}

// TestCompactSize is the goal of issue 14: one reading of a 30-day
// shipment (43,200 minute readings) in an epoch of 1,000 shipments fits
// in 1 KiB. The sizes are those of the audit paths of such trees; the
// bytes do not depend on the hashes.
func TestCompactSize(t *testing.T) {
	b := load(t, "record.json")
	b.TreeSize, b.Record.Index = 43200, 43199
	b.Epoch.Entries, b.Epoch.Index = 1000, 999
	b.Record.Path = make([]merkle.Hash, 16) // ceil(log2 43,200)
	b.Epoch.Path = make([]merkle.Hash, 10)  // ceil(log2 1,000)
	b.Shipment = "SHP-2026-000042"
	b.Epoch.Number, b.Anchor.Block, b.Anchor.ChainID = 4380, 40_000_000, 137 // a year of 2-hour epochs, on Polygon
	proof, err := bundle.MarshalCompact(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(proof) > 1024 {
		t.Fatalf("the compact proof is %d bytes, want at most 1,024", len(proof))
	}
	t.Logf("%d bytes, of which %d are the 26 hashes of the two audit paths", len(proof), 26*32)
}

func FuzzUnmarshalCompact(f *testing.F) {
	raw, err := bundle.MarshalCompact(loadF(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw, []byte(loadF(f).Record.Data))
	f.Add([]byte(bundle.CompactMagic), []byte("{}"))
	f.Fuzz(func(t *testing.T, proof, data []byte) {
		b, err := bundle.UnmarshalCompact(proof, data)
		if err != nil {
			return
		}
		// Whatever decodes encodes back to the same bytes, and verifying
		// it never panics.
		again, err := bundle.MarshalCompact(b)
		if err != nil || !bytes.Equal(again, proof) {
			t.Fatalf("decoded, but encodes to %x (%v)", again, err)
		}
		_, _ = bundle.Verify(b)
	})
}

func loadF(f *testing.F) *bundle.Bundle { return load(f, "record.json") }
