//go:build integration

package influx

import (
	"os"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/coldchain/coldchain/store"
	"github.com/coldchain/coldchain/store/storetest"
)

// testConfig is the InfluxDB that scripts/peers.sh starts:
//
//	scripts/peers.sh start influxdb && eval "$(scripts/peers.sh env influxdb)"
func testConfig(t testing.TB) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.URL = os.Getenv("COLDCHAIN_TEST_INFLUX_URL")
	cfg.Org = os.Getenv("COLDCHAIN_TEST_INFLUX_ORG")
	cfg.Bucket = os.Getenv("COLDCHAIN_TEST_INFLUX_BUCKET")
	cfg.Token = Token(os.Getenv("COLDCHAIN_TEST_INFLUX_TOKEN"))
	if cfg.URL == "" {
		t.Fatal("COLDCHAIN_TEST_INFLUX_URL is not set: run `scripts/peers.sh start influxdb` and `eval \"$(scripts/peers.sh env influxdb)\"`, or `make test-integration`")
	}
	return cfg
}

func TestConformance(t *testing.T) {
	cfg := testConfig(t)
	storetest.Run(t, func(t *testing.T, opts store.Options) store.Store {
		s, err := New(cfg, opts, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
