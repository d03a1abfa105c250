package simulator

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/coldchain/coldchain/embedded/mqttbroker"
)

// TestDialRefusedSaysWhy: against a broker that admits only registered
// devices, the simulator's error says how to let a simulated fleet in.
func TestDialRefusedSaysWhy(t *testing.T) {
	b, err := mqttbroker.Start(mqttbroker.Config{Listen: "127.0.0.1:0", MaxPacketSize: 1 << 20}, nil, &mqttbroker.Security{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(0)
	_, err = DialMQTT(context.Background(), MQTTConfig{URL: "tcp://" + b.Addr(), ClientID: "sim-refused"}, &Stats{})
	if err == nil || !strings.Contains(err.Error(), "COLDCHAIN_MQTT_ALLOW_ANONYMOUS=true") {
		t.Fatalf("DialMQTT: %v, want the refusal explained", err)
	}
}
