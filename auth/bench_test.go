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

// BenchmarkCanPublishGranted is what the broker's ACL adds to every
// device publish.
func BenchmarkCanPublishGranted(b *testing.B) {
	g := (&Grants{m: map[Grant]bool{{Shipment: "SHP-0042", Org: "acme"}: true}}).Granted
	b.ReportAllocs()
	for b.Loop() {
		if d := CanPublishGranted(devA, "coldchain/v1/SHP-0042/L1/readings", g); d != nil {
			b.Fatal(d)
		}
	}
}
