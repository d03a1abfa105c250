package record

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"math"
	"time"
)

// SignReading signs one reading as a device does: obj is the reading's wire
// object (members the topic scopes may be left out, as on MQTT); the
// signature covers the reading's SignedBytes, which include the scoped
// shipment and device. It returns obj with a "sig" member added. obj must be
// a valid reading without sig.
func SignReading(obj []byte, scope Scope, key ed25519.PrivateKey) ([]byte, error) {
	obj = bytes.TrimSpace(obj)
	lim := Limits{MaxRecords: 1, MaxFuture: math.MaxInt64}
	recs, rejects, err := DecodeReadings(obj, scope, lim, time.Time{})
	switch {
	case err != nil:
		return nil, err
	case len(rejects) > 0:
		return nil, rejects[0].Err
	case len(recs) != 1 || obj[0] != '{':
		return nil, errors.New("sign one reading object, not an array")
	case recs[0].Sig != nil:
		return nil, errors.New("the reading is signed already")
	}
	sig := ed25519.Sign(key, recs[0].AppendSigned(nil))
	out := make([]byte, 0, len(obj)+100)
	out = append(out, obj[:len(obj)-1]...)
	if len(bytes.TrimSpace(obj[1:len(obj)-1])) > 0 {
		out = append(out, ',')
	}
	out = append(out, `"sig":"`...)
	out = base64.StdEncoding.AppendEncode(out, sig)
	return append(out, `"}`...), nil
}

// VerifySig reports whether r carries a signature that key verifies over
// r's SignedBytes.
func (r *Reading) VerifySig(key ed25519.PublicKey) bool {
	if len(r.Sig) != SigSize || len(key) != ed25519.PublicKeySize {
		return false
	}
	var buf [512]byte
	return ed25519.Verify(key, r.AppendSigned(buf[:0]), r.Sig)
}
