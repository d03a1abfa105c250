package record

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// now is the gateway clock the tests decode at.
var now = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// knownDigests reads testdata/canonical.sha256, produced by
// `sha256sum *.canonical.json` in testdata/.
func knownDigests(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, "canonical.sha256")))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		out[f[1]] = f[0]
	}
	return out
}

// TestCanonicalVectors checks the known-answer vectors of docs/RECORDS.md: a
// wire record with every member decodes to exactly the canonical bytes in
// testdata (written by hand from the spec), whose SHA-256 is the one
// sha256sum printed.
func TestCanonicalVectors(t *testing.T) {
	digests := knownDigests(t)
	t.Run("reading", func(t *testing.T) {
		recs, rej, err := DecodeReadings(readFile(t, "reading-v1.wire.json"), Scope{}, DefaultLimits(), now)
		if err != nil || len(rej) != 0 || len(recs) != 1 {
			t.Fatalf("decode: %v %v %d", err, rej, len(recs))
		}
		got := recs[0].AppendCanonical(nil)
		want := readFile(t, "reading-v1.canonical.json")
		if !bytes.Equal(got, want) {
			t.Fatalf("canonical\n got %s\nwant %s", got, want)
		}
		if d := Digest(got); hex.EncodeToString(d[:]) != digests["reading-v1.canonical.json"] {
			t.Fatalf("digest %x", d)
		}
		if id := recs[0].ID(); id != "reefer-7:18446744073709551615" {
			t.Fatalf("id %q", id)
		}
	})
	t.Run("handover", func(t *testing.T) {
		recs, rej, err := DecodeHandovers(readFile(t, "handover-v1.wire.json"), Scope{}, DefaultLimits(), now)
		if err != nil || len(rej) != 0 || len(recs) != 1 {
			t.Fatalf("decode: %v %v %d", err, rej, len(recs))
		}
		got := recs[0].AppendCanonical(nil)
		want := readFile(t, "handover-v1.canonical.json")
		if !bytes.Equal(got, want) {
			t.Fatalf("canonical\n got %s\nwant %s", got, want)
		}
		if d := Digest(got); hex.EncodeToString(d[:]) != digests["handover-v1.canonical.json"] {
			t.Fatalf("digest %x", d)
		}
	})
}

// TestCanonicalParse checks that the canonical encoding parses back to a
// record that encodes to the same bytes, and that the stream decoder refuses
// a canonical record of the wrong type or version.
func TestCanonicalParse(t *testing.T) {
	for _, name := range []string{"reading-v1.canonical.json", "handover-v1.canonical.json"} {
		b := readFile(t, name)
		var again []byte
		if strings.HasPrefix(name, "reading") {
			r, err := ParseReading(b)
			if err != nil {
				t.Fatal(err)
			}
			again = r.AppendCanonical(nil)
			if _, err := ParseHandover(b); err == nil {
				t.Fatal("a reading parsed as a handover")
			}
		} else {
			h, err := ParseHandover(b)
			if err != nil {
				t.Fatal(err)
			}
			again = h.AppendCanonical(nil)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("%s: round trip\n got %s\nwant %s", name, again, b)
		}
		if _, err := ParseReading(bytes.Replace(b, []byte(`"v":1`), []byte(`"v":2`), 1)); err == nil {
			t.Fatalf("%s: version 2 accepted", name)
		}
	}
}

// pointOne and pointTwo are variables so that 0.1+0.2 is float64 arithmetic,
// not exact constant arithmetic.
var pointOne, pointTwo = 0.1, 0.2

func TestAppendNumber(t *testing.T) {
	// Expected strings are ECMAScript's String(x) for each value (RFC 8785
	// Appendix B's table and node -e 'console.log(String(x))').
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{0, "0"}, {1, "1"}, {-1, "-1"}, {4.7, "4.7"}, {pointOne + pointTwo, "0.30000000000000004"},
		{1e21, "1e+21"}, {1e20, "100000000000000000000"}, {1e-6, "0.000001"}, {1e-7, "1e-7"},
		{-1.5e-10, "-1.5e-10"}, {123456789012345680000, "123456789012345680000"},
		{5e-324, "5e-324"}, {1.7976931348623157e308, "1.7976931348623157e+308"},
		{333333333.3333333, "333333333.3333333"}, {-25.5, "-25.5"},
	} {
		if got := string(AppendNumber(nil, tc.in)); got != tc.want {
			t.Errorf("AppendNumber(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestAppendString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", `"plain"`},
		{"q\"b\\", `"q\"b\\"`},
		{"\b\t\n\f\r\x00\x1f", `"\b\t\n\f\r\u0000\u001f"`},
		{"<&>/\u2028é€😀", "\"<&>/\u2028é€😀\""},
		{"\x7f", "\"\x7f\""},
	} {
		if got := string(AppendString(nil, tc.in)); got != tc.want {
			t.Errorf("AppendString(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

const good = `{"shipment":"S1","device":"D1","seq":7,"ts":"2026-03-10T11:00:00Z","temp_c":5.5}`

// TestDecodeReadingRejects has one row per rejection reason the product
// promises: each bad reading is rejected with that reason, naming the field.
func TestDecodeReadingRejects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     string
		reason Reason
		field  string
	}{
		{"unknown field", `{"shipment":"S1","device":"D1","seq":7,"ts":"2026-03-10T11:00:00Z","temp_c":5.5,"colour":"red"}`, ReasonUnknownField, "colour"},
		{"duplicate field", `{"shipment":"S1","device":"D1","seq":7,"ts":"2026-03-10T11:00:00Z","temp_c":5.5,"temp_c":6}`, ReasonDuplicateField, "temp_c"},
		{"missing temp", `{"shipment":"S1","device":"D1","seq":7,"ts":"2026-03-10T11:00:00Z"}`, ReasonMissingField, "temp_c"},
		{"missing ts", `{"shipment":"S1","device":"D1","seq":7,"temp_c":5}`, ReasonMissingField, "ts"},
		{"missing seq", `{"shipment":"S1","device":"D1","ts":"2026-03-10T11:00:00Z","temp_c":5}`, ReasonMissingField, "seq"},
		{"missing shipment without topic", `{"device":"D1","seq":1,"ts":"2026-03-10T11:00:00Z","temp_c":5}`, ReasonMissingField, "shipment"},
		{"temp as string", `{"shipment":"S1","device":"D1","seq":7,"ts":"2026-03-10T11:00:00Z","temp_c":"5.5"}`, ReasonWrongType, "temp_c"},
		{"temp null", `{"shipment":"S1","device":"D1","seq":7,"ts":"2026-03-10T11:00:00Z","temp_c":null}`, ReasonWrongType, "temp_c"},
		{"seq fraction", `{"shipment":"S1","device":"D1","seq":7.5,"ts":"2026-03-10T11:00:00Z","temp_c":5}`, ReasonWrongType, "seq"},
		{"seq negative", `{"shipment":"S1","device":"D1","seq":-1,"ts":"2026-03-10T11:00:00Z","temp_c":5}`, ReasonWrongType, "seq"},
		{"seq overflow", `{"shipment":"S1","device":"D1","seq":18446744073709551616,"ts":"2026-03-10T11:00:00Z","temp_c":5}`, ReasonOutOfRange, "seq"},
		{"ts without offset", `{"shipment":"S1","device":"D1","seq":7,"ts":"2026-03-10T11:00:00","temp_c":5}`, ReasonBadTimestamp, "ts"},
		{"ts epoch number", `{"shipment":"S1","device":"D1","seq":7,"ts":1773140400,"temp_c":5}`, ReasonWrongType, "ts"},
		{"ts garbage", `{"shipment":"S1","device":"D1","seq":7,"ts":"yesterday","temp_c":5}`, ReasonBadTimestamp, "ts"},
		{"ts clock never set", `{"shipment":"S1","device":"D1","seq":7,"ts":"1970-01-01T00:00:00Z","temp_c":5}`, ReasonBadTimestamp, "ts"},
		{"ts 6 min ahead", `{"shipment":"S1","device":"D1","seq":7,"ts":"2026-03-10T12:06:00Z","temp_c":5}`, ReasonFutureTimestamp, "ts"},
		{"ts ahead by offset", `{"shipment":"S1","device":"D1","seq":7,"ts":"2026-03-10T13:00:00-01:00","temp_c":5}`, ReasonFutureTimestamp, "ts"},
		{"NaN", `{"shipment":"S1","device":"D1","seq":7,"ts":"2026-03-10T11:00:00Z","temp_c":NaN}`, ReasonNotFinite, "temp_c"},
		{"Infinity", `{"shipment":"S1","device":"D1","seq":7,"ts":"2026-03-10T11:00:00Z","temp_c":-Infinity}`, ReasonNotFinite, "temp_c"},
		{"overflow to inf", `{"shipment":"S1","device":"D1","seq":7,"ts":"2026-03-10T11:00:00Z","temp_c":1e400}`, ReasonOutOfRange, "temp_c"},
		{"temp too hot", `{"shipment":"S1","device":"D1","seq":7,"ts":"2026-03-10T11:00:00Z","temp_c":100.01}`, ReasonOutOfRange, "temp_c"},
		{"temp too cold", `{"shipment":"S1","device":"D1","seq":7,"ts":"2026-03-10T11:00:00Z","temp_c":-273}`, ReasonOutOfRange, "temp_c"},
		{"rh over 100", `{"shipment":"S1","device":"D1","seq":7,"ts":"2026-03-10T11:00:00Z","temp_c":5,"rh":101}`, ReasonOutOfRange, "rh"},
		{"lat", `{"shipment":"S1","device":"D1","seq":7,"ts":"2026-03-10T11:00:00Z","temp_c":5,"lat":91}`, ReasonOutOfRange, "lat"},
		{"lon", `{"shipment":"S1","device":"D1","seq":7,"ts":"2026-03-10T11:00:00Z","temp_c":5,"lon":-180.5}`, ReasonOutOfRange, "lon"},
		{"door as string", `{"shipment":"S1","device":"D1","seq":7,"ts":"2026-03-10T11:00:00Z","temp_c":5,"door_open":"no"}`, ReasonWrongType, "door_open"},
		{"probe", `{"shipment":"S1","device":"D1","seq":7,"ts":"2026-03-10T11:00:00Z","temp_c":5,"probe":"wet"}`, ReasonBadValue, "probe"},
		{"reefer mode", `{"shipment":"S1","device":"D1","seq":7,"ts":"2026-03-10T11:00:00Z","temp_c":5,"reefer":{"mode":"turbo"}}`, ReasonBadValue, "reefer.mode"},
		{"reefer unknown", `{"shipment":"S1","device":"D1","seq":7,"ts":"2026-03-10T11:00:00Z","temp_c":5,"reefer":{"fan":1}}`, ReasonUnknownField, "reefer.fan"},
		{"reefer not object", `{"shipment":"S1","device":"D1","seq":7,"ts":"2026-03-10T11:00:00Z","temp_c":5,"reefer":[]}`, ReasonWrongType, "reefer"},
		{"ext nested", `{"shipment":"S1","device":"D1","seq":7,"ts":"2026-03-10T11:00:00Z","temp_c":5,"ext":{"a":{"b":1}}}`, ReasonWrongType, "ext.a"},
		{"ext null", `{"shipment":"S1","device":"D1","seq":7,"ts":"2026-03-10T11:00:00Z","temp_c":5,"ext":{"a":null}}`, ReasonWrongType, "ext.a"},
		{"ext bad key", `{"shipment":"S1","device":"D1","seq":7,"ts":"2026-03-10T11:00:00Z","temp_c":5,"ext":{"a b":1}}`, ReasonBadValue, "ext.a b"},
		{"ext NaN", `{"shipment":"S1","device":"D1","seq":7,"ts":"2026-03-10T11:00:00Z","temp_c":5,"ext":{"x":NaN}}`, ReasonNotFinite, "ext.x"},
		{"device id with slash", `{"shipment":"S1","device":"D/1","seq":7,"ts":"2026-03-10T11:00:00Z","temp_c":5}`, ReasonInvalidID, "device"},
		{"shipment id too long", `{"shipment":"` + strings.Repeat("x", 65) + `","device":"D1","seq":7,"ts":"2026-03-10T11:00:00Z","temp_c":5}`, ReasonInvalidID, "shipment"},
		{"empty shipment", `{"shipment":"","device":"D1","seq":7,"ts":"2026-03-10T11:00:00Z","temp_c":5}`, ReasonInvalidID, "shipment"},
		{"wildcard in id", `{"shipment":"S1","device":"#","seq":7,"ts":"2026-03-10T11:00:00Z","temp_c":5}`, ReasonInvalidID, "device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, rej, err := DecodeReadings([]byte(tc.in), Scope{}, DefaultLimits(), now)
			if err != nil {
				t.Fatalf("message rejected as a whole: %v", err)
			}
			if len(recs) != 0 || len(rej) != 1 {
				t.Fatalf("got %d records, %d rejects; want 0, 1", len(recs), len(rej))
			}
			e := rej[0].Err
			if e.Reason != tc.reason || e.Field != tc.field {
				t.Fatalf("got %s (field %q): %v; want %s on %q", e.Reason, e.Field, e, tc.reason, tc.field)
			}
			if e.Detail == "" {
				t.Fatal("no detail for a person to act on")
			}
			if string(rej[0].Raw) != tc.in {
				t.Fatalf("raw bytes %q, want the original", rej[0].Raw)
			}
		})
	}
}

func TestDecodeUnknownDevice(t *testing.T) {
	lim := DefaultLimits()
	lim.KnownDevice = func(d string) bool { return d == "D1" }
	in := `[` + good + `,` + strings.Replace(good, `"D1"`, `"D9"`, 1) + `]`
	recs, rej, err := DecodeReadings([]byte(in), Scope{}, lim, now)
	if err != nil || len(recs) != 1 || recs[0].Device != "D1" {
		t.Fatalf("%v %+v", err, recs)
	}
	if len(rej) != 1 || rej[0].Err.Reason != ReasonUnknownDevice || rej[0].Err.Field != "device" || rej[0].Err.Index != 1 {
		t.Fatalf("%+v", rej)
	}
}

func TestDecodeTopicScope(t *testing.T) {
	scope := Scope{Shipment: "S1", Device: "D1"}
	t.Run("filled from topic", func(t *testing.T) {
		recs, _, err := DecodeReadings([]byte(`{"seq":1,"ts":"2026-03-10T11:00:00Z","temp_c":5}`), scope, DefaultLimits(), now)
		if err != nil || len(recs) != 1 || recs[0].Shipment != "S1" || recs[0].Device != "D1" {
			t.Fatalf("%v %+v", err, recs)
		}
	})
	t.Run("agreeing", func(t *testing.T) {
		recs, rej, _ := DecodeReadings([]byte(good), scope, DefaultLimits(), now)
		if len(recs) != 1 || len(rej) != 0 {
			t.Fatalf("%v", rej)
		}
	})
	for _, tc := range []struct{ name, in, field string }{
		{"shipment", `{"shipment":"S2","seq":1,"ts":"2026-03-10T11:00:00Z","temp_c":5}`, "shipment"},
		{"device", `{"device":"D2","seq":1,"ts":"2026-03-10T11:00:00Z","temp_c":5}`, "device"},
	} {
		t.Run("mismatched "+tc.name, func(t *testing.T) {
			_, rej, _ := DecodeReadings([]byte(tc.in), scope, DefaultLimits(), now)
			if len(rej) != 1 || rej[0].Err.Reason != ReasonTopicMismatch || rej[0].Err.Field != tc.field {
				t.Fatalf("%+v", rej)
			}
		})
	}
}

// TestDecodeMessageRejects covers what makes a whole message unusable.
func TestDecodeMessageRejects(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxRecords = 3
	for _, tc := range []struct {
		name, in string
		reason   Reason
	}{
		{"empty", ``, ReasonMalformedJSON},
		{"whitespace", "  \n", ReasonMalformedJSON},
		{"truncated", `{"shipment":"S1","device":"D1","seq":7,"ts":"2026-`, ReasonMalformedJSON},
		{"trailing comma", `{"shipment":"S1",}`, ReasonMalformedJSON},
		{"trailing garbage", good + `x`, ReasonMalformedJSON},
		{"two objects", good + good, ReasonMalformedJSON},
		{"scalar", `42`, ReasonMalformedJSON},
		{"bare NaN", `NaN`, ReasonMalformedJSON},
		{"bad escape", `{"shipment":"S\q"}`, ReasonMalformedJSON},
		{"lone surrogate", `{"shipment":"\ud800"}`, ReasonMalformedJSON},
		{"invalid utf8", "{\"shipment\":\"\xff\"}", ReasonMalformedJSON},
		{"control char", "{\"shipment\":\"a\nb\"}", ReasonMalformedJSON},
		{"leading zero", `{"seq":01}`, ReasonMalformedJSON},
		{"deep nesting", strings.Repeat("[", 100) + strings.Repeat("]", 100), ReasonMalformedJSON},
		{"broken element in batch", `[` + good + `,{"seq":}]`, ReasonMalformedJSON},
		{"too many", `[` + good + `,` + good + `,` + good + `,` + good + `]`, ReasonTooManyRecords},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, rej, err := DecodeReadings([]byte(tc.in), Scope{}, lim, now)
			if err == nil || err.Reason != tc.reason {
				t.Fatalf("got %v (%d records, %d rejects), want %s", err, len(recs), len(rej), tc.reason)
			}
			if recs != nil || rej != nil {
				t.Fatal("a rejected message returned records")
			}
		})
	}
}

// TestDecodeBatchPartial checks that one bad element of a burst costs only
// itself: good ones are kept in order, each bad one comes back with its
// index and exact bytes.
func TestDecodeBatchPartial(t *testing.T) {
	bad1 := `{"shipment":"S1","device":"D1","seq":8,"ts":"2026-03-10T11:05:00Z","temp_c":500}`
	bad2 := `"not a record"`
	good2 := strings.Replace(good, `"seq":7`, `"seq":9`, 1)
	in := "[" + good + ",\n " + bad1 + " , " + bad2 + "," + good2 + "]"
	recs, rej, err := DecodeReadings([]byte(in), Scope{}, DefaultLimits(), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Seq != 7 || recs[1].Seq != 9 {
		t.Fatalf("records %+v", recs)
	}
	if len(rej) != 2 {
		t.Fatalf("rejects %+v", rej)
	}
	if rej[0].Err.Index != 1 || rej[0].Err.Reason != ReasonOutOfRange || string(rej[0].Raw) != bad1 {
		t.Fatalf("reject 0: %v %q", rej[0].Err, rej[0].Raw)
	}
	if rej[1].Err.Index != 2 || rej[1].Err.Reason != ReasonWrongType || string(rej[1].Raw) != bad2 {
		t.Fatalf("reject 1: %v %q", rej[1].Err, rej[1].Raw)
	}
}

// TestHandoverKinds decodes every custody kind and round-trips it through
// the canonical encoding; a release or receive without the new members
// keeps the canonical bytes it had before they existed.
func TestHandoverKinds(t *testing.T) {
	doc := strings.Repeat("ab", 32)
	for _, kind := range HandoverKindNames() {
		extra := ""
		switch kind {
		case "qc_checkpoint":
			extra = `,"qc_result":"fail","doc_sha256":"` + doc + `"`
		case "receive", "arrive":
			extra = `,"final":true,"owner":"Consignee GmbH"`
		}
		in := `{"id":"H-` + kind + `","shipment":"S1","ts":"2026-03-10T11:00:00Z","site":"SIN-1","kind":"` + kind + `","from_party":"A","to_party":"B"` + extra + `}`
		recs, rej, err := DecodeHandovers([]byte(in), Scope{}, DefaultLimits(), now)
		if err != nil || len(rej) != 0 || len(recs) != 1 {
			t.Fatalf("%s: %v %v", kind, err, rej)
		}
		h := recs[0]
		if h.Kind.String() != kind {
			t.Fatalf("%s decoded as %s", kind, h.Kind)
		}
		if strings.Contains(extra, "owner") != (h.Owner == "Consignee GmbH") {
			t.Fatalf("%s: owner %q", kind, h.Owner)
		}
		canon := h.AppendCanonical(nil)
		back, perr := ParseHandover(canon)
		if perr != nil {
			t.Fatalf("%s: canonical %s does not parse: %v", kind, canon, perr)
		}
		if !bytes.Equal(back.AppendCanonical(nil), canon) || back.QCResult != h.QCResult || back.DocSHA256 != h.DocSHA256 || back.Final != h.Final || back.Owner != h.Owner {
			t.Fatalf("%s: round trip %+v, want %+v", kind, back, h)
		}
	}
	old := Handover{ID: "H1", Shipment: "S1", Time: time.Date(2026, 3, 10, 11, 0, 0, 0, time.UTC), Site: "SIN-1", Kind: HandoverRelease, FromParty: "A", ToParty: "B", Seal: "SL-1"}
	const want = `{"from_party":"A","id":"H1","kind":"release","seal":"SL-1","shipment":"S1","site":"SIN-1","to_party":"B","ts":"2026-03-10T11:00:00Z","type":"handover","v":1}`
	if got := string(old.AppendCanonical(nil)); got != want {
		t.Fatalf("a release's canonical bytes changed:\n%s\nwant\n%s", got, want)
	}
}

func TestDecodeHandoverRejects(t *testing.T) {
	base := map[string]any{"id": "H1", "shipment": "S1", "ts": "2026-03-10T11:00:00Z", "site": "SIN-1",
		"kind": "receive", "from_party": "A", "to_party": "B"}
	enc := func(mut func(m map[string]any)) string {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		mut(m)
		b, _ := json.Marshal(m)
		return string(b)
	}
	recs, rej, err := DecodeHandovers([]byte(enc(func(map[string]any) {})), Scope{}, DefaultLimits(), now)
	if err != nil || len(rej) != 0 || len(recs) != 1 {
		t.Fatalf("valid handover: %v %v", err, rej)
	}
	for _, tc := range []struct {
		name   string
		mut    func(m map[string]any)
		reason Reason
		field  string
	}{
		{"missing site", func(m map[string]any) { delete(m, "site") }, ReasonMissingField, "site"},
		{"missing to_party", func(m map[string]any) { delete(m, "to_party") }, ReasonMissingField, "to_party"},
		{"bad kind", func(m map[string]any) { m["kind"] = "lost" }, ReasonBadValue, "kind"},
		{"bad id", func(m map[string]any) { m["id"] = "a b" }, ReasonInvalidID, "id"},
		{"empty party", func(m map[string]any) { m["from_party"] = "" }, ReasonBadValue, "from_party"},
		{"long note", func(m map[string]any) { m["note"] = strings.Repeat("n", 1025) }, ReasonBadValue, "note"},
		{"temp", func(m map[string]any) { m["temp_c"] = 120 }, ReasonOutOfRange, "temp_c"},
		{"future", func(m map[string]any) { m["ts"] = "2026-03-11T00:00:00Z" }, ReasonFutureTimestamp, "ts"},
		{"unknown", func(m map[string]any) { m["device"] = "D1" }, ReasonUnknownField, "device"},
		{"qc without a result", func(m map[string]any) { m["kind"] = "qc_checkpoint" }, ReasonMissingField, "qc_result"},
		{"qc result not pass or fail", func(m map[string]any) { m["kind"], m["qc_result"] = "qc_checkpoint", "ok" }, ReasonBadValue, "qc_result"},
		{"qc result on a receive", func(m map[string]any) { m["qc_result"] = "pass" }, ReasonBadValue, "qc_result"},
		{"doc hash not hex", func(m map[string]any) { m["doc_sha256"] = strings.Repeat("Z", 64) }, ReasonBadValue, "doc_sha256"},
		{"doc hash short", func(m map[string]any) { m["doc_sha256"] = "abcd" }, ReasonBadValue, "doc_sha256"},
		{"final on a release", func(m map[string]any) { m["kind"], m["final"] = "release", true }, ReasonBadValue, "final"},
		{"final not a boolean", func(m map[string]any) { m["final"] = "yes" }, ReasonWrongType, "final"},
		{"empty owner", func(m map[string]any) { m["owner"] = "" }, ReasonBadValue, "owner"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, rej, err := DecodeHandovers([]byte(enc(tc.mut)), Scope{}, DefaultLimits(), now)
			if err != nil || len(rej) != 1 {
				t.Fatalf("%v %v", err, rej)
			}
			if e := rej[0].Err; e.Reason != tc.reason || e.Field != tc.field {
				t.Fatalf("got %v, want %s on %s", e, tc.reason, tc.field)
			}
		})
	}
	t.Run("topic mismatch", func(t *testing.T) {
		_, rej, _ := DecodeHandovers([]byte(enc(func(map[string]any) {})), Scope{Shipment: "S9"}, DefaultLimits(), now)
		if len(rej) != 1 || rej[0].Err.Reason != ReasonTopicMismatch {
			t.Fatalf("%v", rej)
		}
	})
}

func TestErrorString(t *testing.T) {
	e := &Error{Reason: ReasonOutOfRange, Field: "temp_c", Index: 3, Detail: "must be between -100 and 100 °C, got 120"}
	if got, want := e.Error(), "[index 3] temp_c: out_of_range: must be between -100 and 100 °C, got 120"; got != want {
		t.Fatalf("%q", got)
	}
	for _, r := range Reasons() {
		if p, ok := ParseReason(r.String()); !ok || p != r {
			t.Fatalf("reason %d does not round-trip", r)
		}
	}
}

func BenchmarkDecodeReading(b *testing.B) {
	p := []byte(`{"shipment":"SHP-1","device":"reefer-7","seq":123456,"ts":"2026-03-10T11:00:00.5Z","temp_c":4.73,"rh":61.5,"lat":1.2644,"lon":103.822,"reefer":{"mode":"cooling","setpoint_c":5}}`)
	lim := DefaultLimits()
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		recs, _, err := DecodeReadings(p, Scope{}, lim, now)
		if err != nil {
			b.Fatal(err)
		}
		buf = recs[0].AppendCanonical(buf[:0])
	}
}

func BenchmarkDecodeBatch100(b *testing.B) {
	var sb strings.Builder
	sb.WriteByte('[')
	for i := range 100 {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strings.Replace(good, `"seq":7`, `"seq":`+string(rune('0'+i%10)), 1))
	}
	sb.WriteByte(']')
	p := []byte(sb.String())
	lim := DefaultLimits()
	b.ReportAllocs()
	for b.Loop() {
		recs, _, err := DecodeReadings(p, Scope{}, lim, now)
		if err != nil || len(recs) != 100 {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "readings/s")
}

// TestAlertCanonical checks the alert encoding against a line written by
// hand from docs/RECORDS.md, and that it parses back to the same bytes.
func TestAlertCanonical(t *testing.T) {
	a := Alert{
		ID: "9f2c", Shipment: "SHP-1", Device: "reefer-7", Rule: "single_event_high", Severity: "alarm",
		Transition: "opened", Start: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 1, 8, 30, 0, 0, time.UTC),
		At: time.Date(2026, 3, 1, 8, 30, 0, 0, time.UTC), PeakC: Some(9.25), Beyond: 30 * time.Minute, MKTC: Some(6.125),
		Readings: []string{"reefer-7:10", "reefer-7:16"}, Late: true, LateBy: 90 * time.Minute,
	}
	want := `{"at":"2026-03-01T08:30:00Z","beyond_s":1800,"detected_late":true,"device":"reefer-7","end":"2026-03-01T08:30:00Z","id":"9f2c","late_by_s":5400,"mkt_c":6.125,"peak_c":9.25,"readings":["reefer-7:10","reefer-7:16"],"rule":"single_event_high","severity":"alarm","shipment":"SHP-1","start":"2026-03-01T08:00:00Z","transition":"opened","type":"alert","v":1}`
	got := a.AppendCanonical(nil)
	if string(got) != want {
		t.Fatalf("canonical\n got %s\nwant %s", got, want)
	}
	back, err := ParseAlert(got)
	if err != nil {
		t.Fatal(err)
	}
	if again := back.AppendCanonical(nil); string(again) != want {
		t.Fatalf("round trip %s", again)
	}
	if id := a.EventID(); id != "9f2c:opened:1772353800000000000" {
		t.Fatalf("event id %s", id)
	}
	if _, err := ParseAlert([]byte(strings.Replace(want, `"type":"alert"`, `"type":"reading"`, 1))); err == nil {
		t.Fatal("a non-alert parsed")
	}
}

// TestMalformedSaysWhatWasFound is issue 15's fourth papercut: a payload
// that is not JSON is quoted in the detail, not described as null.
func TestMalformedSaysWhatWasFound(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ in, want string }{
		{"not json", `found "not json", which is not JSON`},
		{"true", "found a boolean"},
		{"null", "found null"},
		{"nope", `found "nope", which is not JSON`},
		{"<xml/>", `found "<xml/>", which is not JSON`},
		{"12", "found a number"},
	} {
		_, _, err := DecodeReadings([]byte(tc.in), Scope{}, DefaultLimits(), now)
		if err == nil || err.Reason != ReasonMalformedJSON || !strings.Contains(err.Detail, tc.want) {
			t.Errorf("%q: got %v, want malformed_json with %q", tc.in, err, tc.want)
		}
	}
}
