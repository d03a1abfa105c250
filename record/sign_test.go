package record

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

var signNow = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

const wireReading = `{"seq":7,"ts":"2026-03-01T08:00:00+08:00","temp_c":5.25,"rh":61.5,"ext":{"fw":"1.2"}}`

func decodeWithKeys(t *testing.T, payload []byte, keys map[string]ed25519.PublicKey) ([]Reading, []Reject) {
	t.Helper()
	lim := DefaultLimits()
	lim.DeviceKey = func(d string) ed25519.PublicKey { return keys[d] }
	recs, rejects, err := DecodeReadings(payload, Scope{Shipment: "SHP-1", Device: "reefer-7"}, lim, signNow)
	if err != nil {
		t.Fatalf("message refused: %v", err)
	}
	return recs, rejects
}

func TestSignedReadings(t *testing.T) {
	priv, other := testKey(1), testKey(2)
	pub := priv.Public().(ed25519.PublicKey)
	scope := Scope{Shipment: "SHP-1", Device: "reefer-7"}
	signed, err := SignReading([]byte(wireReading), scope, priv)
	if err != nil {
		t.Fatal(err)
	}
	byOther, err := SignReading([]byte(wireReading), scope, other)
	if err != nil {
		t.Fatal(err)
	}
	// The same reading signed, then its temperature changed: a replay
	// with an altered value.
	altered := bytes.Replace(signed, []byte(`"temp_c":5.25`), []byte(`"temp_c":4.25`), 1)
	// The signature over the reading of another shipment (the topic is
	// part of what is signed).
	otherShipment, err := SignReading([]byte(wireReading), Scope{Shipment: "SHP-2", Device: "reefer-7"}, priv)
	if err != nil {
		t.Fatal(err)
	}
	sigOf := func(b []byte) string {
		i := bytes.Index(b, []byte(`"sig":"`))
		return string(b[i+7 : i+7+88])
	}
	raw, _ := base64.StdEncoding.DecodeString(sigOf(signed))
	urlSafe := strings.Replace(string(signed), sigOf(signed), base64.RawURLEncoding.EncodeToString(raw), 1)
	keyed := map[string]ed25519.PublicKey{"reefer-7": pub}

	for _, tc := range []struct {
		name    string
		payload string
		keys    map[string]ed25519.PublicKey
		reason  Reason // 0: accepted
	}{
		{"signed, key registered", string(signed), keyed, 0},
		{"url-safe unpadded signature", urlSafe, keyed, 0},
		{"unsigned, no key registered", wireReading, nil, 0},
		{"unsigned, key registered", wireReading, keyed, ReasonUnsigned},
		{"signed, no key registered", string(signed), nil, ReasonBadSignature},
		{"signed by another key", string(byOther), keyed, ReasonBadSignature},
		{"temperature changed after signing", string(altered), keyed, ReasonBadSignature},
		{"signature of another shipment's reading", string(otherShipment), keyed, ReasonBadSignature},
		{"signature not base64", strings.Replace(string(signed), sigOf(signed), strings.Repeat("!", 88), 1), keyed, ReasonBadSignature},
		{"signature too short", strings.Replace(string(signed), sigOf(signed), "AAAA", 1), keyed, ReasonBadSignature},
		{"signature not a string", strings.Replace(string(signed), `"`+sigOf(signed)+`"`, "12", 1), keyed, ReasonWrongType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, rejects := decodeWithKeys(t, []byte(tc.payload), tc.keys)
			if tc.reason == 0 {
				if len(rejects) != 0 || len(recs) != 1 {
					t.Fatalf("refused: %v", rejects[0].Err)
				}
				if strings.Contains(tc.payload, `"sig"`) && !recs[0].VerifySig(pub) {
					t.Fatal("accepted reading's signature does not verify")
				}
				return
			}
			if len(recs) != 0 || len(rejects) != 1 {
				t.Fatalf("accepted %d, rejected %d; want one %s", len(recs), len(rejects), tc.reason)
			}
			e := rejects[0].Err
			if e.Reason != tc.reason || e.Field != "sig" || e.Detail == "" {
				t.Fatalf("got %v (field %q), want %s on sig", e, e.Field, tc.reason)
			}
			if !bytes.Equal(rejects[0].Raw, []byte(tc.payload)) {
				t.Fatalf("dead letter bytes %s, want the original", rejects[0].Raw)
			}
		})
	}
}

// TestSignedCanonical: the signature is kept in the canonical encoding (so
// the Merkle leaf covers it), reads back on both parse paths, and the signed
// bytes are the canonical encoding without it.
func TestSignedCanonical(t *testing.T) {
	priv := testKey(3)
	signed, err := SignReading([]byte(wireReading), Scope{Shipment: "SHP-1", Device: "reefer-7"}, priv)
	if err != nil {
		t.Fatal(err)
	}
	recs, rejects := decodeWithKeys(t, signed, map[string]ed25519.PublicKey{"reefer-7": priv.Public().(ed25519.PublicKey)})
	if len(rejects) > 0 {
		t.Fatal(rejects[0].Err)
	}
	r := recs[0]
	c := r.AppendCanonical(nil)
	if !bytes.Contains(c, []byte(`,"shipment":"SHP-1","sig":"`)) {
		t.Fatalf("sig not in its sorted place: %s", c)
	}
	unsigned := r
	unsigned.Sig = nil
	if got, want := r.AppendSigned(nil), unsigned.AppendCanonical(nil); !bytes.Equal(got, want) {
		t.Fatalf("signed bytes %s\nwant %s", got, want)
	}
	for name, parse := range map[string]func([]byte) (Reading, error){"ParseReading": ParseReading, "general": generalReading} {
		back, err := parse(c)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(back.AppendCanonical(nil), c) || !back.VerifySig(priv.Public().(ed25519.PublicKey)) {
			t.Fatalf("%s: round trip lost the signature: %s", name, back.AppendCanonical(nil))
		}
	}
	// Without ext the fast path takes a signed reading.
	r.Ext = nil
	var fast Reading
	if !fastReading(r.AppendCanonical(nil), &fast) || !bytes.Equal(fast.Sig, r.Sig) {
		t.Fatal("fast path refused or lost a signed reading")
	}
}

func TestSignReadingRefuses(t *testing.T) {
	priv := testKey(4)
	scope := Scope{Shipment: "SHP-1", Device: "reefer-7"}
	signed, _ := SignReading([]byte(wireReading), scope, priv)
	for name, in := range map[string]string{
		"already signed": string(signed),
		"array":          "[" + wireReading + "]",
		"invalid":        `{"seq":1}`,
		"not json":       `{`,
	} {
		if _, err := SignReading([]byte(in), scope, priv); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
}

// BenchmarkDecodeSigned is the cost a signature adds to decoding one
// reading: the Ed25519 verify dominates.
func BenchmarkDecodeSigned(b *testing.B) {
	priv := testKey(5)
	pub := priv.Public().(ed25519.PublicKey)
	scope := Scope{Shipment: "SHP-1", Device: "reefer-7"}
	signed, err := SignReading([]byte(wireReading), scope, priv)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		payload []byte
		key     ed25519.PublicKey
	}{{"unsigned", []byte(wireReading), nil}, {"signed", signed, pub}} {
		b.Run(c.name, func(b *testing.B) {
			lim := DefaultLimits()
			lim.DeviceKey = func(string) ed25519.PublicKey { return c.key }
			b.ReportAllocs()
			for b.Loop() {
				if recs, rj, err := DecodeReadings(c.payload, scope, lim, signNow); err != nil || len(rj) > 0 || len(recs) != 1 {
					b.Fatal("refused")
				}
			}
		})
	}
}
