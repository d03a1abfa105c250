package record

import (
	"crypto/ed25519"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// stdlibRules makes curve25519-voi verify exactly as crypto/ed25519 does:
// cofactorless, small-order and non-canonical public keys and small-order
// R allowed, S < ℓ required. The offline verifier (anchor/bundle) checks
// the same signatures with crypto/ed25519, so a reading the gateway takes
// is one a customs broker's verifier takes too; TestVerifyMatchesStdlib
// and FuzzVerifyMatchesStdlib hold the two to that.
var stdlibRules = &voi.Options{Verify: voi.VerifyOptionsStdLib}

// verifySig reports whether sig is key's Ed25519 signature over msg. It is
// the ingest path's check: curve25519-voi takes about 23 µs a signature on
// the development VM against 37 µs for crypto/ed25519 (docs/PERFORMANCE.md).
func verifySig(key ed25519.PublicKey, msg, sig []byte) bool {
	if len(key) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	return voi.VerifyWithOptions(voi.PublicKey(key), msg, sig, stdlibRules)
}
