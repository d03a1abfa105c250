package gateway

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/coldchain/coldchain/config"
)

// A port already taken fails Run before anything starts, naming the key
// and its environment variable, for every listener the gateway binds.
func TestPortInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()

	for _, tc := range []struct {
		key, env string
		set      func(*config.Config)
	}{
		{"nats.listen", "COLDCHAIN_NATS_LISTEN", func(c *config.Config) { c.NATS.Listen = addr }},
		{"mqtt.listen", "COLDCHAIN_MQTT_LISTEN", func(c *config.Config) { c.MQTT.Broker.Listen = addr }},
		{"http.listen", "COLDCHAIN_HTTP_LISTEN", func(c *config.Config) { c.HTTP.Listen = addr }},
		{"chain.listen", "COLDCHAIN_CHAIN_LISTEN", func(c *config.Config) { c.Chain.Listen = addr }},
	} {
		t.Run(tc.key, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(dir)
			tc.set(&cfg)
			g, err := New(cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err = g.Run(ctx)
			if err == nil {
				t.Fatal("Run succeeded on a port in use")
			}
			for _, want := range []string{tc.key, addr, "already in use", tc.env} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			select {
			case <-g.Ready():
				t.Error("gateway became ready")
			default:
			}
		})
	}
}

// The listeners of an external-peer configuration are only the gateway's
// own: no embedded NATS, broker or chain address is probed.
func TestListenersExternal(t *testing.T) {
	cfg := config.Default()
	cfg.NATS.URL = "nats://127.0.0.1:4222"
	cfg.MQTT.Client.URL = "tcp://127.0.0.1:1883"
	cfg.Chain.Kind = "rpc"
	ls := listeners(cfg)
	if len(ls) != 1 || ls[0].key != "http.listen" {
		t.Fatalf("listeners = %+v, want only http.listen", ls)
	}
	if got := len(listeners(config.Default())); got != 4 {
		t.Fatalf("default config has %d listeners, want 4", got)
	}
}
