package bundle_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coldchain/coldchain/anchor/bundle"
	"github.com/coldchain/coldchain/merkle"
	"github.com/coldchain/coldchain/record"
)

// The known answers of the worked example (testdata/README.md), each
// recomputed in a shell with nothing but jq, sha256sum and xxd:
//
//	leaf() { (printf '\0'; printf '%s' "$1") | sha256sum | cut -c1-64; }
//	node() { (printf '\1'; printf '%s%s' "$1" "$2" | xxd -r -p) | sha256sum | cut -c1-64; }
//	l0=$(leaf "$(jq -j '.records[0]' full.json)")   # 1bb4d727…
//	l1=$(leaf "$(jq -j '.records[1]' full.json)")   # 3c995f90…
//	l2=$(leaf "$(jq -j '.records[2]' full.json)")   # eae0798e…
//	node $(node $l0 $l1) $l2                        # the shipment root
const (
	wantLeaf0       = "1bb4d72774900b395706e9ad998daf02aeffccfa64018682750aef5633c6f96f"
	wantLeaf1       = "3c995f9022b4f6a032e1a3dd1416584168673f19263692421fe9749651e397a6"
	wantLeaf2       = "eae0798e585025d6b42c3785ff755dc7c21d04c4078695072fbfa3f111fba5f3"
	wantRootAt2     = "0ad01cad50371b8c45bfa53eac47f729f3d8cdd9b325c32913c81f854e2ea7b1"
	wantRoot        = "8d334a68747190a7bfcd24a9b4a572043f32b27b6ebcfbdbd919f1ee2154d17f"
	wantEntryLeaf   = "976156c605671c74a39bb5aead90b6a6e5c8d699f3bb91723e6b0b2ef03ad04d" // leaf of EntryBytes
	wantEntriesRoot = "a94ff58f8932d93617e3a89e3754342edce47c53a948acc71f493e51c8c41483" // node $entry_leaf $epoch_path0
	wantEpochRoot   = "891a7ff75f7307202d5ea9353b47a1258bc7e9c85153b6f3e133c2d1cfbab09c" // printf '%s' "$header" | sha256sum
)

func hash(s string) merkle.Hash {
	var h merkle.Hash
	if err := h.UnmarshalText([]byte(s)); err != nil {
		panic(err)
	}
	return h
}

func load(t testing.TB, name string) *bundle.Bundle {
	t.Helper()
	raw, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKnownAnswers(t *testing.T) {
	b := load(t, "full.json")
	for i, want := range []string{wantLeaf0, wantLeaf1, wantLeaf2} {
		if got := merkle.LeafHash([]byte(b.Records[i])).String(); got != want {
			t.Errorf("leaf %d = %s, want %s", i, got, want)
		}
	}
	l := []merkle.Hash{hash(wantLeaf0), hash(wantLeaf1), hash(wantLeaf2)}
	if got := merkle.NodeHash(l[0], l[1]).String(); got != wantRootAt2 {
		t.Errorf("root at 2 = %s", got)
	}
	if got := merkle.NodeHash(merkle.NodeHash(l[0], l[1]), l[2]).String(); got != wantRoot || b.Root.String() != wantRoot {
		t.Errorf("root = %s, file %s, want %s", got, b.Root, wantRoot)
	}
	entry := bundle.EntryBytes("SHP-2026-0042", 3, hash(wantRoot))
	if want := `{"root":"` + wantRoot + `","shipment":"SHP-2026-0042","size":3,"type":"shipment","v":1}`; string(entry) != want {
		t.Errorf("entry bytes %s", entry)
	}
	if got := merkle.LeafHash(entry).String(); got != wantEntryLeaf {
		t.Errorf("entry leaf = %s", got)
	}
	if got := merkle.NodeHash(hash(wantEntryLeaf), b.Epoch.Path[0]).String(); got != wantEntriesRoot {
		t.Errorf("entries root = %s", got)
	}
	header := bundle.HeaderBytes(2, b.Epoch.Prev, 2, hash(wantEntriesRoot))
	if want := `{"entries":2,"entries_root":"` + wantEntriesRoot + `","epoch":2,"prev":"` + b.Epoch.Prev.String() + `","type":"epoch","v":1}`; string(header) != want {
		t.Errorf("header bytes %s", header)
	}
	if got := bundle.EpochRoot(2, b.Epoch.Prev, 2, hash(wantEntriesRoot)).String(); got != wantEpochRoot || b.Epoch.Root.String() != wantEpochRoot {
		t.Errorf("epoch root = %s, file %s", got, b.Epoch.Root)
	}
}

func TestVerifyExamples(t *testing.T) {
	for _, name := range []string{"full.json", "record.json"} {
		t.Run(name, func(t *testing.T) {
			b := load(t, name)
			s, err := bundle.Verify(b)
			if err != nil {
				t.Fatal(err)
			}
			if s.Root.String() != wantRoot || s.EpochRoot.String() != wantEpochRoot || s.TreeSize != 3 {
				t.Fatalf("summary %+v", s)
			}
			if err := bundle.CheckAnchor(context.Background(), b, truth); err != nil {
				t.Fatal(err)
			}
		})
	}
	s, _ := bundle.Verify(load(t, "full.json"))
	if s.Kinds["reading"] != 2 || s.Kinds["handover"] != 1 || s.MinTempC != 4.7 || s.MaxTempC != 4.9 || s.FromSize != 2 {
		t.Fatalf("summary %+v", s)
	}
}

// truth is the chain of the example: it holds the example's epoch root in
// one transaction and answers as evm.VerifyAnchor does.
var truth = bundle.AnchorCheckerFunc(func(_ context.Context, a bundle.Anchor, root merkle.Hash) error {
	want := bundle.Anchor{ChainID: 1337, Contract: "0x5fbdb2315678afecb367f032d93f642f64180aa3",
		Tx: "0x64a8b81f6e2b6ced363c0bab60b1c714fe141ce5c2d17828352f249dc06f5c39", Block: 102}
	switch {
	case root.String() != wantEpochRoot:
		return fmt.Errorf("root %s was never anchored", root)
	case a.ChainID != want.ChainID:
		return fmt.Errorf("chain id is %d, the bundle says %d", want.ChainID, a.ChainID)
	case !strings.EqualFold(a.Contract, want.Contract):
		return fmt.Errorf("root is in contract %s, the bundle says %s", want.Contract, a.Contract)
	case !strings.EqualFold(a.Tx, want.Tx):
		return fmt.Errorf("transaction %s did not anchor root %s", a.Tx, root)
	case a.Block != want.Block:
		return fmt.Errorf("root is in block %d, the bundle says %d", want.Block, a.Block)
	}
	return nil
})

func setTemp(rec string, from, to string) string {
	if !strings.Contains(rec, `"temp_c":`+from+`,`) {
		panic("no temp_c " + from + " in " + rec)
	}
	return strings.Replace(rec, `"temp_c":`+from+`,`, `"temp_c":`+to+`,`, 1)
}

func flip(h merkle.Hash) merkle.Hash { h[31] ^= 1; return h }

// TestMutations: every change to a bundle fails with the check that names
// it. The vectors are named after the mutation; onChain marks those that
// only the chain can refute (offline they verify, as they must: the file
// alone cannot tell one well-formed transaction hash from another).
func TestMutations(t *testing.T) {
	for _, tc := range []struct {
		name    string
		file    string
		mutate  func(b *bundle.Bundle)
		want    error
		detail  string
		onChain bool
	}{
		{"one-temperature-changed", "full.json", func(b *bundle.Bundle) { b.Records[1] = setTemp(b.Records[1], "4.9", "2.9") }, bundle.ErrShipmentRoot, "the 3 records hash to", false},
		{"temperature-not-canonical", "full.json", func(b *bundle.Bundle) { b.Records[1] = setTemp(b.Records[1], "4.9", "4.90") }, bundle.ErrRecord, "record 1: not in canonical form", false},
		{"reading-removed", "full.json", func(b *bundle.Bundle) { b.Records = b.Records[1:] }, bundle.ErrTreeSize, "holds 2 records but its tree_size is 3", false},
		{"reading-removed-tree-size-lowered", "full.json", func(b *bundle.Bundle) { b.Records = b.Records[1:]; b.TreeSize = 2 }, bundle.ErrShipmentRoot, "the 2 records hash to", false},
		{"records-swapped", "full.json", func(b *bundle.Bundle) { b.Records[0], b.Records[1] = b.Records[1], b.Records[0] }, bundle.ErrShipmentRoot, "", false},
		{"record-added", "full.json", func(b *bundle.Bundle) { b.Records = append(b.Records, b.Records[1]) }, bundle.ErrTreeSize, "holds 4 records", false},
		{"record-added-tree-size-raised", "full.json", func(b *bundle.Bundle) { b.Records = append(b.Records, b.Records[1]); b.TreeSize = 4 }, bundle.ErrShipmentRoot, "", false},
		{"record-of-other-shipment", "full.json", func(b *bundle.Bundle) {
			b.Records[0] = strings.Replace(b.Records[0], "SHP-2026-0042", "SHP-2026-0043", 1)
		}, bundle.ErrRecord, `record 0: of shipment "SHP-2026-0043"`, false},
		{"record-not-json", "full.json", func(b *bundle.Bundle) { b.Records[2] = b.Records[2][1:] }, bundle.ErrRecord, "record 2: not a JSON object", false},
		{"wrong-root", "full.json", func(b *bundle.Bundle) { b.Root = flip(b.Root) }, bundle.ErrShipmentRoot, "", false},
		{"wrong-root-with-records", "record.json", func(b *bundle.Bundle) { b.Root = flip(b.Root) }, bundle.ErrShipmentRoot, "record 2 and its audit path", false},
		{"wrong-tree-size", "record.json", func(b *bundle.Bundle) { b.TreeSize = 4 }, bundle.ErrShipmentRoot, "", false},
		{"disclosed-record-changed", "record.json", func(b *bundle.Bundle) { b.Record.Data = strings.Replace(b.Record.Data, "EK-77120", "EK-77121", 1) }, bundle.ErrShipmentRoot, "", false},
		{"disclosed-record-wrong-index", "record.json", func(b *bundle.Bundle) { b.Record.Index = 1 }, bundle.ErrShipmentRoot, "", false},
		{"disclosed-record-index-out-of-range", "record.json", func(b *bundle.Bundle) { b.Record.Index = 3 }, bundle.ErrMalformed, "not below tree_size", false},
		{"record-path-flipped", "record.json", func(b *bundle.Bundle) { b.Record.Path[0] = flip(b.Record.Path[0]) }, bundle.ErrShipmentRoot, "", false},
		{"record-path-truncated", "record.json", func(b *bundle.Bundle) { b.Record.Path = nil }, bundle.ErrShipmentRoot, "wrong proof size", false},
		{"records-and-record", "record.json", func(b *bundle.Bundle) { b.Records = []string{b.Record.Data} }, bundle.ErrMalformed, "either records", false},
		{"wrong-from-root", "full.json", func(b *bundle.Bundle) { b.Consistency.FromRoot = flip(b.Consistency.FromRoot) }, bundle.ErrConsistency, "the first 2 records hash to", false},
		{"consistency-path-flipped", "full.json", func(b *bundle.Bundle) { b.Consistency.Path[0] = flip(b.Consistency.Path[0]) }, bundle.ErrConsistency, "size 2", false},
		{"wrong-epoch-index", "full.json", func(b *bundle.Bundle) { b.Epoch.Index = 1 }, bundle.ErrEpochEntry, "at index 1", false},
		{"epoch-path-flipped", "full.json", func(b *bundle.Bundle) { b.Epoch.Path[0] = flip(b.Epoch.Path[0]) }, bundle.ErrEpochEntry, "", false},
		{"wrong-entries-root", "full.json", func(b *bundle.Bundle) { b.Epoch.EntriesRoot = flip(b.Epoch.EntriesRoot) }, bundle.ErrEpochEntry, "", false},
		{"wrong-epoch-root", "full.json", func(b *bundle.Bundle) { b.Epoch.Root = flip(b.Epoch.Root) }, bundle.ErrEpochRoot, "the header of epoch 2 hashes to " + wantEpochRoot, false},
		{"wrong-prev", "full.json", func(b *bundle.Bundle) { b.Epoch.Prev = flip(b.Epoch.Prev) }, bundle.ErrEpochRoot, "", false},
		{"wrong-epoch-number", "full.json", func(b *bundle.Bundle) { b.Epoch.Number = 3 }, bundle.ErrEpochRoot, "", false},
		{"first-epoch-with-prev", "full.json", func(b *bundle.Bundle) { b.Epoch.Number = 1 }, bundle.ErrEpochRoot, "the first epoch chains to 32 zero bytes", false},
		{"wrong-format", "full.json", func(b *bundle.Bundle) { b.Format = "coldchain-proof/2" }, bundle.ErrFormat, "", false},
		{"malformed-tx", "full.json", func(b *bundle.Bundle) { b.Anchor.Tx = b.Anchor.Tx[:10] }, bundle.ErrAnchor, "tx", false},
		{"missing-block", "full.json", func(b *bundle.Bundle) { b.Anchor.Block = 0 }, bundle.ErrAnchor, "block is 0", false},
		{"wrong-transaction", "full.json", func(b *bundle.Bundle) {
			b.Anchor.Tx = "0x" + strings.Repeat("ab", 32)
		}, bundle.ErrAnchor, "transaction 0xabab", true},
		{"wrong-chain-id", "full.json", func(b *bundle.Bundle) { b.Anchor.ChainID = 1 }, bundle.ErrAnchor, "chain id is 1337, the bundle says 1", true},
		{"wrong-contract", "record.json", func(b *bundle.Bundle) { b.Anchor.Contract = "0x" + strings.Repeat("00", 20) }, bundle.ErrAnchor, "contract", true},
		{"wrong-block", "record.json", func(b *bundle.Bundle) { b.Anchor.Block = 101 }, bundle.ErrAnchor, "block 102", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := load(t, tc.file)
			tc.mutate(b)
			_, err := bundle.Verify(b)
			if tc.onChain {
				if err != nil {
					t.Fatalf("offline: %v; only the chain can refute this", err)
				}
				err = bundle.CheckAnchor(context.Background(), b, truth)
			}
			if !errors.Is(err, tc.want) || !strings.Contains(fmt.Sprint(err), tc.detail) {
				t.Fatalf("got %v, want %v with %q", err, tc.want, tc.detail)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	raw, err := os.ReadFile("testdata/record.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data string
	}{
		{"trailing-garbage", string(raw) + "{}"},
		{"unknown-member", strings.Replace(string(raw), `"tree_size"`, `"treesize":1,"tree_size"`, 1)},
		{"short-hash", strings.Replace(string(raw), wantRoot, wantRoot[:62], 1)},
		{"not-json", "format: coldchain-proof/1"},
		{"empty", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := bundle.Decode([]byte(tc.data)); !errors.Is(err, bundle.ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
}

// FuzzDecodeVerify: no input makes Decode or Verify panic, and whatever
// verifies re-encodes to a bundle that verifies.
func FuzzDecodeVerify(f *testing.F) {
	for _, name := range []string{"full.json", "record.json", "signed.json"} {
		raw, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := bundle.Decode(data)
		if err != nil {
			return
		}
		if _, err := bundle.Verify(b); err != nil {
			return
		}
		var buf strings.Builder
		if err := bundle.Encode(&buf, b); err != nil {
			t.Fatal(err)
		}
		again, err := bundle.Decode([]byte(buf.String()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bundle.Verify(again); err != nil {
			t.Fatalf("re-encoded bundle fails: %v", err)
		}
	})
}

// TestSignedReadings: a bundle whose device signed its readings proves
// each was signed by the device's key; every change to a signed reading,
// its sig or the key is refused as a signature failure, before the Merkle
// checks even run.
func TestSignedReadings(t *testing.T) {
	s, err := bundle.Verify(load(t, "signed.json"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Signed != 2 || s.Unsigned != 1 || s.NoKey != 0 {
		t.Fatalf("signed %d, unsigned %d, no key %d; want 2, 1, 0", s.Signed, s.Unsigned, s.NoKey)
	}
	other := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	for _, tc := range []struct {
		name   string
		mutate func(b *bundle.Bundle)
		want   error
		detail string
	}{
		{"signed-temperature-changed", func(b *bundle.Bundle) { b.Records[0] = setTemp(b.Records[0], "5.1", "4.1") }, bundle.ErrSignature, "record 0 (reading logger-9:1)"},
		{"sig-of-another-reading", func(b *bundle.Bundle) {
			sig := func(r string) string { i := strings.Index(r, `"sig":"`); return r[i : i+7+88] }
			b.Records[1] = strings.Replace(b.Records[1], sig(b.Records[1]), sig(b.Records[0]), 1)
		}, bundle.ErrSignature, "record 1"},
		{"key-replaced", func(b *bundle.Bundle) { b.DeviceKeys[0].PublicKey = other }, bundle.ErrSignature, "1 key(s)"},
		{"key-malformed", func(b *bundle.Bundle) { b.DeviceKeys[0].PublicKey = other[:16] }, bundle.ErrMalformed, "device_keys[0]"},
		{"sig-added-to-unsigned", func(b *bundle.Bundle) {
			i := strings.Index(b.Records[0], `"sig":"`)
			b.Records[2] = strings.Replace(b.Records[2], `"temp_c"`, b.Records[0][i:i+7+88]+`","temp_c"`, 1)
		}, bundle.ErrSignature, "record 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := load(t, "signed.json")
			tc.mutate(b)
			if _, err := bundle.Verify(b); !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.detail) {
				t.Fatalf("got %v, want %v with %q", err, tc.want, tc.detail)
			}
		})
	}
	// Without the keys the bundle still verifies, but nothing vouches for
	// the signatures: the summary says so.
	b := load(t, "signed.json")
	b.DeviceKeys = nil
	if s, err := bundle.Verify(b); err != nil || s.Signed != 0 || s.NoKey != 2 {
		t.Fatalf("without keys: %+v, %v; want 2 signed readings without a key", s, err)
	}
	// A rotated key: the bundle gives both, and the old one still verifies.
	b = load(t, "signed.json")
	b.DeviceKeys = append([]bundle.DeviceKey{{Device: "logger-9", PublicKey: other}}, b.DeviceKeys...)
	if s, err := bundle.Verify(b); err != nil || s.Signed != 2 {
		t.Fatalf("with a second key: %+v, %v", s, err)
	}
}

// TestCalibrations: the verifier counts the readings taken outside every
// calibration window of their device, and refuses a malformed record.
func TestCalibrations(t *testing.T) {
	at := func(s string) time.Time { v, _ := time.Parse(time.RFC3339, s); return v }
	cal := bundle.Calibration{Device: "logger-9", Serial: "SN", Calibration: record.Calibration{Lab: "Lab", Accreditation: "ISO/IEC 17025", Reference: "PRT",
		CertSHA256: strings.Repeat("ab", 32), CalibratedAt: at("2025-03-02T00:00:00Z"), DueAt: at("2026-03-02T08:01:00Z"), UncertaintyC: 0.1}}
	b := load(t, "signed.json")
	b.Calibrations = []bundle.Calibration{cal}
	s, err := bundle.Verify(b)
	if err != nil {
		t.Fatal(err)
	}
	// Readings at 08:00 (in), 08:01 (due: out) and 08:02 (out).
	if s.OutOfCalibration["logger-9"] != 2 || s.FirstOut["logger-9"] != "logger-9:2" {
		t.Errorf("out of calibration %v, first %v", s.OutOfCalibration, s.FirstOut)
	}
	// A later calibration covers them.
	next := cal
	next.CalibratedAt, next.DueAt = cal.DueAt, cal.DueAt.AddDate(1, 0, 0)
	b.Calibrations = append(b.Calibrations, next)
	if s, err := bundle.Verify(b); err != nil || len(s.OutOfCalibration) != 0 {
		t.Errorf("with the next calibration: %v %v", s.OutOfCalibration, err)
	}
	// Without records nothing is counted; a malformed one is refused.
	b.Calibrations = nil
	if s, err := bundle.Verify(b); err != nil || s.OutOfCalibration != nil {
		t.Errorf("without records: %v %v", s.OutOfCalibration, err)
	}
	bad := cal
	bad.DueAt = bad.CalibratedAt
	b.Calibrations = []bundle.Calibration{bad}
	if _, err := bundle.Verify(b); !errors.Is(err, bundle.ErrMalformed) || !strings.Contains(err.Error(), "calibrations[0]") {
		t.Errorf("malformed calibration: %v", err)
	}
}
