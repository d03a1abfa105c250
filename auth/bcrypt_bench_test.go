package auth

import "testing"

// BenchmarkCheck is what one MQTT CONNECT with a password costs the
// gateway's CPU (bcrypt at the default cost).
func BenchmarkCheck(b *testing.B) {
	c, err := NewCredential(devA, []byte("device-L1-password-0001"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if !c.Check([]byte("device-L1-password-0001")) {
			b.Fatal("password refused")
		}
	}
}
