package config

import (
	"fmt"
	"os"

	"github.com/coldchain/coldchain/alert"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestDefaultsValid(t *testing.T) {
	cfg, err := Load("", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.MQTT.Embedded() || !cfg.NATS.Embedded() || cfg.HTTP.Listen != "127.0.0.1:8080" {
		t.Fatalf("defaults: %+v", cfg)
	}
}

// TestConfigsDirLoads loads every file in configs/ with the environment its
// ${VAR}s need, and checks that configs/coldchain.yaml states exactly the
// defaults.
func TestConfigsDirLoads(t *testing.T) {
	files, err := filepath.Glob("../configs/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no configs: %v", err)
	}
	vars := env(map[string]string{
		"COLDCHAIN_TEST_DATA_DIR": t.TempDir(), "COLDCHAIN_BROKER_URL": "tcp://broker:1883",
		"COLDCHAIN_BROKER_USER": "u", "COLDCHAIN_BROKER_PASSWORD": "p", "HOSTNAME": "gw-1", "NATS_TOKEN": "t",
		"COLDCHAIN_INFLUX_URL": "http://influxdb:8086", "COLDCHAIN_INFLUX_TOKEN": "i",
	})
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := Load(f, vars)
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Base(f) == "coldchain.yaml" {
				def := Default()
				def.Ingest.Devices = []string{}
				def.Alerts.Shipments = map[string]string{}
				def.Alerts.Webhooks = []alert.WebhookConfig{}
				if !reflect.DeepEqual(cfg, def) {
					t.Fatalf("configs/coldchain.yaml differs from the defaults:\n%+v\n%+v", cfg, def)
				}
			}
		})
	}
}

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEnvOverrides(t *testing.T) {
	cfg, err := Load(write(t, "http:\n  listen: 127.0.0.1:9000\n"), env(map[string]string{
		"COLDCHAIN_DATA_DIR":              "/var/lib/coldchain",
		"COLDCHAIN_HTTP_LISTEN":           "0.0.0.0:8081",
		"COLDCHAIN_MQTT_URL":              "tcp://mosquitto:1883",
		"COLDCHAIN_MQTT_USERNAME":         "gw",
		"COLDCHAIN_MQTT_PASSWORD":         "s3cret",
		"COLDCHAIN_NATS_URL":              "nats://a:4222,nats://b:4222",
		"COLDCHAIN_NATS_LISTEN":           "127.0.0.1:5222",
		"COLDCHAIN_MQTT_LISTEN":           "127.0.0.1:2883",
		"COLDCHAIN_NATS_REPLICAS":         "3",
		"COLDCHAIN_NATS_DUPLICATE_WINDOW": "1h",
		"COLDCHAIN_INGEST_DEVICES":        "d1, d2",
		"COLDCHAIN_NATS_TLS_CA":           "/etc/coldchain/ca.crt",
		"COLDCHAIN_MQTT_CLIENT_TLS_CERT":  "gw.crt",
		"COLDCHAIN_MQTT_CLIENT_TLS_KEY":   "gw.key",
		"COLDCHAIN_MQTT_DEVICE_RATE":      "2.5",
	}))
	if err != nil {
		t.Fatal(err)
	}
	for name, ok := range map[string]bool{
		"data_dir":    cfg.DataDir == "/var/lib/coldchain",
		"http.listen": cfg.HTTP.Listen == "0.0.0.0:8081", // the environment wins over the file
		"mqtt.url":    cfg.MQTT.Client.URL == "tcp://mosquitto:1883" && !cfg.MQTT.Embedded(),
		"mqtt.user":   cfg.MQTT.Client.Username == "gw" && cfg.MQTT.Client.Password == "s3cret",
		"mqtt.listen": cfg.MQTT.Broker.Listen == "127.0.0.1:2883",
		"nats.url":    cfg.NATS.URL == "nats://a:4222,nats://b:4222" && !cfg.NATS.Embedded(),
		"nats.listen": cfg.NATS.Listen == "127.0.0.1:5222",
		"replicas":    cfg.NATS.Streams.Replicas == 3,
		"window":      cfg.NATS.Streams.DuplicateWindow == time.Hour,
		"devices":     reflect.DeepEqual(cfg.Ingest.Devices, []string{"d1", "d2"}),
		"nats.tls":    cfg.NATS.TLS.CA == "/etc/coldchain/ca.crt",
		"client_tls":  cfg.MQTT.Client.TLS.Cert == "gw.crt" && cfg.MQTT.Client.TLS.Key == "gw.key",
		"device_rate": cfg.MQTT.Broker.DeviceRate == 2.5,
	} {
		if !ok {
			t.Errorf("%s not overridden: %+v", name, cfg)
		}
	}
}

// TestErrorsNameTheKey checks that every kind of bad configuration names
// the key (or variable) at fault.
func TestErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		env        map[string]string
		want       string
	}{
		{"unknown key", "htpp:\n  listen: x\n", nil, "htpp"},
		{"unknown nested key", "nats:\n  replica: 3\n", nil, "replica"},
		{"bad duration", "nats:\n  duplicate_window: soon\n", nil, "duplicate_window"},
		{"bad listen", "http:\n  listen: 8080\n", nil, "http.listen"},
		{"replicas", "nats:\n  replicas: 0\n", nil, "nats.replicas"},
		{"log level", "log:\n  level: loud\n", nil, "log.level"},
		{"missing secret", "mqtt:\n  password: ${NOPE}\n", nil, "NOPE"},
		{"env int", "", map[string]string{"COLDCHAIN_NATS_REPLICAS": "three"}, "COLDCHAIN_NATS_REPLICAS"},
		{"env duration", "", map[string]string{"COLDCHAIN_SHUTDOWN_TIMEOUT": "5"}, "COLDCHAIN_SHUTDOWN_TIMEOUT"},
		{"bad mqtt url", "", map[string]string{"COLDCHAIN_MQTT_URL": "mosquitto"}, "mqtt.url"},
		{"bad device", "ingest:\n  devices: [\"a b\"]\n", nil, "ingest.devices"},
		{"bad devices.unknown", "devices:\n  unknown: maybe\n", nil, "devices.unknown"},
		{"payload vs packet", "ingest:\n  max_payload: 33554432\n", nil, "mqtt.max_packet_size"},
		{"no mqtt listener", "", map[string]string{"COLDCHAIN_MQTT_LISTEN": ""}, "mqtt.listen"},
		{"tls listen without a cert", "", map[string]string{"COLDCHAIN_MQTT_TLS_LISTEN": "127.0.0.1:8883"}, "mqtt.tls_listen"},
		{"client ca without tls", "", map[string]string{"COLDCHAIN_MQTT_TLS_CLIENT_CA": "ca.crt"}, "mqtt.tls_client_ca"},
		{"https cert without key", "", map[string]string{"COLDCHAIN_HTTP_TLS_CERT": "server.crt"}, "http.tls_key"},
		{"nats tls on the embedded server", "", map[string]string{"COLDCHAIN_NATS_TLS_CA": "ca.crt"}, "nats.tls: applies to an external NATS"},
		{"nats client cert without key", "", map[string]string{"COLDCHAIN_NATS_URL": "tls://n:4222", "COLDCHAIN_NATS_TLS_CERT": "gw.crt"}, "nats.tls.cert and nats.tls.key"},
		{"mqtt client tls on the embedded broker", "", map[string]string{"COLDCHAIN_MQTT_CLIENT_TLS_CA": "ca.crt"}, "mqtt.client_tls: applies to an external broker"},
		{"mqtt client key without cert", "", map[string]string{"COLDCHAIN_MQTT_URL": "ssl://m:8883", "COLDCHAIN_MQTT_CLIENT_TLS_KEY": "gw.key"}, "mqtt.client_tls.cert"},
		{"influx tls over http", "store:\n  kind: influx\n  influx: {url: \"http://i:8086\", org: o, bucket: b, tls: {ca: ca.crt}}\n", nil, "store.influx.tls: applies to an https:// url"},
		{"chain tls over http", "chain:\n  kind: rpc\n  rpc_url: http://c:8545\n  key: \"0x" + strings.Repeat("11", 32) + "\"\n  tls: {ca: ca.crt}\n", nil, "chain.tls: applies to an https:// rpc_url"},
		{"device rate", "", map[string]string{"COLDCHAIN_MQTT_DEVICE_RATE": "-1"}, "mqtt.device_rate"},
		{"token burst", "http:\n  token_burst: 0\n", nil, "http.token_burst"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = write(t, tc.file)
			}
			_, err := Load(path, env(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v does not name %q", err, tc.want)
			}
		})
	}
}

// TestStoreConfig covers the store section: the environment selects
// InfluxDB, errors name the key, and the token never prints.
func TestStoreConfig(t *testing.T) {
	cfg, err := Load("", env(map[string]string{
		"COLDCHAIN_STORE_KIND":          "influx",
		"COLDCHAIN_STORE_INFLUX_URL":    "http://influxdb:8086",
		"COLDCHAIN_STORE_INFLUX_ORG":    "ops",
		"COLDCHAIN_STORE_INFLUX_BUCKET": "coldchain",
		"COLDCHAIN_STORE_INFLUX_TOKEN":  "s3cret-token",
		"COLDCHAIN_STORE_BATCH_SIZE":    "5000",
		"COLDCHAIN_STORE_RETENTION":     "2160h",
	}))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Store
	if s.Writer.Kind != "influx" || s.Influx.URL != "http://influxdb:8086" || s.Influx.Org != "ops" ||
		s.Influx.Bucket != "coldchain" || string(s.Influx.Token) != "s3cret-token" ||
		s.Writer.BatchSize != 5000 || s.Writer.Retention != 90*24*time.Hour {
		t.Fatalf("store not overridden: %+v", s)
	}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(f, cfg); strings.Contains(out, "s3cret") {
			t.Fatalf("%s prints the token: %s", f, out)
		}
	}
	if cfg.StoreDir() != filepath.Join("data", "store") {
		t.Fatalf("store dir %s", cfg.StoreDir())
	}

	for _, tc := range []struct {
		name, file string
		env        map[string]string
		want       string
	}{
		{"kind", "store:\n  kind: sqlite\n", nil, "store.kind"},
		{"batch size", "store:\n  batch_size: 0\n", nil, "store.batch_size"},
		{"short retention", "store:\n  retention: 10m\n", nil, "store.retention"},
		{"unknown key", "store:\n  influx:\n    bukket: x\n", nil, "bukket"},
		{"influx without url", "", map[string]string{"COLDCHAIN_STORE_KIND": "influx"}, "store.influx.url"},
		{"influx bad url", "store:\n  kind: influx\n  influx:\n    url: influxdb:8086\n", nil, "store.influx.url"},
		{"influx without bucket", "store:\n  kind: influx\n  influx:\n    url: http://i:8086\n    org: o\n", nil, "store.influx.bucket"},
		{"env batch size", "", map[string]string{"COLDCHAIN_STORE_BATCH_SIZE": "lots"}, "COLDCHAIN_STORE_BATCH_SIZE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = write(t, tc.file)
			}
			_, err := Load(path, env(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v does not name %q", err, tc.want)
			}
		})
	}
}

// TestShortEpochAlone is issue 15's first papercut: shortening the epoch
// alone must start, with the poll derived from it; a poll the user set
// explicitly is still checked against the epoch.
func TestShortEpochAlone(t *testing.T) {
	cfg, err := Load("", env(map[string]string{"COLDCHAIN_ANCHOR_EPOCH": "3s"}))
	if err != nil {
		t.Fatalf("COLDCHAIN_ANCHOR_EPOCH=3s alone: %v", err)
	}
	if got := cfg.Anchor.PollInterval(); got != 1500*time.Millisecond {
		t.Errorf("derived poll for a 3s epoch: got %s, want 1.5s", got)
	}
	_, err = Load("", env(map[string]string{"COLDCHAIN_ANCHOR_EPOCH": "3s", "COLDCHAIN_ANCHOR_POLL": "5s"}))
	if err == nil || !strings.Contains(err.Error(), "anchor.poll") {
		t.Errorf("an explicit poll longer than the epoch: got %v, want an anchor.poll error", err)
	}
}
