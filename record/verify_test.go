package record

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"math/big"
	"testing"
)

// edgePoints are encodings where Ed25519 implementations are known to
// disagree: the eight small-order points and non-canonical encodings (a
// y ≥ p, or x = 0 with the sign bit set).
var edgePoints = []string{
	"0100000000000000000000000000000000000000000000000000000000000000", // identity
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // order 2
	"0000000000000000000000000000000000000000000000000000000000000000", // order 4
	"0000000000000000000000000000000000000000000000000000000000000080", // order 4
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", // order 8
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa", // order 8
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85", // order 8
	"0100000000000000000000000000000000000000000000000000000000000080", // identity, sign bit set
	"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // y = p
	"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // y = p + 1
}

// groupOrder is ℓ, the order of the base point.
var groupOrder, _ = new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)

// withS returns sig with its scalar S replaced by s (little-endian).
func withS(sig []byte, s *big.Int) []byte {
	out := bytes.Clone(sig)
	le := s.FillBytes(make([]byte, 32))
	for i := range 16 {
		le[i], le[31-i] = le[31-i], le[i]
	}
	copy(out[32:], le)
	return out
}

// TestVerifyMatchesStdlib holds the ingest path's verifier to the rules of
// crypto/ed25519, which the offline verifier uses: on valid signatures, on
// altered ones, on S ≥ ℓ, and on every pairing of small-order and
// non-canonical encodings as public key and as R.
func TestVerifyMatchesStdlib(t *testing.T) {
	var accepted, refused int
	check := func(name string, key, msg, sig []byte) {
		t.Helper()
		want := ed25519.Verify(key, msg, sig)
		if got := verifySig(key, msg, sig); got != want {
			t.Errorf("%s: verifySig = %v, crypto/ed25519 = %v (key %x, sig %x)", name, got, want, key, sig)
		}
		if want {
			accepted++
		} else {
			refused++
		}
	}
	for i := range 64 {
		seed := bytes.Repeat([]byte{byte(i + 1)}, ed25519.SeedSize)
		priv := ed25519.NewKeyFromSeed(seed)
		pub := priv.Public().(ed25519.PublicKey)
		msg := []byte(`{"type":"reading","v":1,"seq":` + string(rune('0'+i%10)) + `}`)
		sig := ed25519.Sign(priv, msg)
		check("valid", pub, msg, sig)
		for _, bit := range []int{0, 255, 256, 511} {
			bad := bytes.Clone(sig)
			bad[bit/8] ^= 1 << (bit % 8)
			check("signature bit flipped", pub, msg, bad)
		}
		check("message altered", pub, append(bytes.Clone(msg), ' '), sig)
		s := new(big.Int).SetBytes(reverse(sig[32:]))
		check("S + ℓ", pub, msg, withS(sig, new(big.Int).Add(s, groupOrder)))
	}
	for _, a := range edgePoints {
		key, _ := hex.DecodeString(a)
		for _, r := range edgePoints {
			rb, _ := hex.DecodeString(r)
			for _, s := range []int64{0, 1} {
				sig := withS(append(bytes.Clone(rb), make([]byte, 32)...), big.NewInt(s))
				check("edge A "+a[:8]+" R "+r[:8], key, []byte("m"), sig)
			}
		}
	}
	// The cases must reach both answers, or the comparison says little.
	if accepted == 0 || refused == 0 {
		t.Fatalf("crypto/ed25519 accepted %d and refused %d cases: want both", accepted, refused)
	}
	t.Logf("%d signatures accepted and %d refused by both", accepted, refused)
}

func reverse(b []byte) []byte {
	out := bytes.Clone(b)
	for i := range len(out) / 2 {
		out[i], out[len(out)-1-i] = out[len(out)-1-i], out[i]
	}
	return out
}

// FuzzVerifyMatchesStdlib mutates keys, messages and signatures, starting
// from valid signatures and the edge encodings: the two verifiers must
// always agree.
func FuzzVerifyMatchesStdlib(f *testing.F) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
	msg := []byte(`{"device":"logger-9","seq":1,"temp_c":5}`)
	f.Add([]byte(priv.Public().(ed25519.PublicKey)), msg, ed25519.Sign(priv, msg))
	for _, p := range edgePoints {
		b, _ := hex.DecodeString(p)
		f.Add(b, []byte("m"), append(bytes.Clone(b), make([]byte, 32)...))
	}
	f.Fuzz(func(t *testing.T, key, msg, sig []byte) {
		if len(key) != ed25519.PublicKeySize {
			return
		}
		want := len(sig) == ed25519.SignatureSize && ed25519.Verify(key, msg, sig)
		if got := verifySig(key, msg, sig); got != want {
			t.Fatalf("verifySig = %v, crypto/ed25519 = %v (key %x, msg %q, sig %x)", got, want, key, msg, sig)
		}
	})
}
