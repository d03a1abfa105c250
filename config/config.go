// Package config composes the gateway's configuration from each part's
// Config: defaults, then a strict YAML file (unknown keys are errors) with
// ${VAR} expansion for secrets, then COLDCHAIN_* environment overrides, then
// validation whose errors name the key.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.yaml.in/yaml/v3"

	"github.com/coldchain/coldchain/alert"
	"github.com/coldchain/coldchain/anchor"
	"github.com/coldchain/coldchain/anchor/evm"
	"github.com/coldchain/coldchain/api"
	"github.com/coldchain/coldchain/cluster"
	"github.com/coldchain/coldchain/custody"
	"github.com/coldchain/coldchain/device"
	"github.com/coldchain/coldchain/embedded/mqttbroker"
	"github.com/coldchain/coldchain/epcis"
	"github.com/coldchain/coldchain/ingest"
	ingestmqtt "github.com/coldchain/coldchain/ingest/mqtt"
	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/pki"
	"github.com/coldchain/coldchain/store"
	"github.com/coldchain/coldchain/store/influx"
)

// Config is the whole gateway configuration. Every key can be overridden
// by an environment variable named COLDCHAIN_ + the key path in upper case
// joined by '_' (mqtt.url → COLDCHAIN_MQTT_URL).
type Config struct {
	// DataDir holds everything the gateway keeps: the embedded JetStream
	// store under nats/, the embedded time-series store under store/.
	DataDir string        `yaml:"data_dir"`
	Log     Log           `yaml:"log"`
	HTTP    api.Config    `yaml:"http"`
	MQTT    MQTT          `yaml:"mqtt"`
	NATS    NATS          `yaml:"nats"`
	Ingest  ingest.Config `yaml:"ingest"`
	Alerts  alert.Config  `yaml:"alerts"`
	Anchor  anchor.Config `yaml:"anchor"`
	// Custody holds the chain-of-custody checks' limits.
	Custody custody.Config `yaml:"custody"`
	// EPCIS maps sites and parties to GS1 identifiers in EPCIS documents.
	EPCIS epcis.Options `yaml:"epcis"`
	// Devices says what to do with readings of devices that are not in
	// the device registry.
	Devices device.Config `yaml:"devices"`
	Chain   evm.Config    `yaml:"chain"`
	// Store is the time-series history the API serves: embedded under
	// <data_dir>/store, or InfluxDB.
	Store Store `yaml:"store"`
	// Cluster runs this gateway as one of several on a NATS cluster
	// (docs/CLUSTER.md).
	Cluster cluster.Config `yaml:"cluster"`
	// ShutdownTimeout bounds the drain of in-flight work on SIGINT/SIGTERM;
	// a second signal aborts at once.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is console (for people) or json (for log pipelines).
	Format string `yaml:"format"`
}

// MQTT is the embedded broker's settings and the external broker's; a URL
// selects the external one.
type MQTT struct {
	Broker mqttbroker.Config `yaml:",inline"`
	Client ingestmqtt.Config `yaml:",inline"`
}

// Embedded reports whether the gateway runs its own broker.
func (m MQTT) Embedded() bool { return m.Client.URL == "" }

// NATS is the embedded server's settings, the external server's URL, and
// the stream settings.
type NATS struct {
	// Listen is the embedded server's client address.
	Listen string `yaml:"listen"`
	// URL of an external server or cluster (comma-separated); setting it
	// disables the embedded server.
	URL string `yaml:"url"`
	// Token authenticates to an external server. With the embedded server
	// it is the token that server requires; empty, the gateway makes a
	// random one and keeps it in data_dir/nats.token (NATSTokenFile).
	Token string `yaml:"token"`
	// TLS checks an external NATS (tls:// URL) against a CA of its own
	// and presents a client certificate to one that verifies clients.
	TLS     pki.ClientTLS  `yaml:"tls"`
	Streams journal.Config `yaml:",inline"`
}

// Embedded reports whether the gateway runs its own NATS server.
func (n NATS) Embedded() bool { return n.URL == "" }

// Store is the time-series store and its writer, and the InfluxDB
// connection used when kind is influx.
type Store struct {
	Writer store.Config  `yaml:",inline"`
	Influx influx.Config `yaml:"influx"`
}

// Default returns the configuration of `coldchain serve` with no file:
// everything embedded, on loopback, data under ./data.
func Default() Config {
	return Config{
		DataDir: "data",
		Log:     Log{Level: "info", Format: "console"},
		HTTP:    api.Config{Listen: "127.0.0.1:8080", IngestTimeout: 30 * time.Second, TokenRate: 50, TokenBurst: 200},
		MQTT: MQTT{
			Broker: mqttbroker.Config{Listen: "127.0.0.1:1883", MaxPacketSize: 16 << 20, DeviceRate: 50, DeviceBurst: 5000},
			Client: ingestmqtt.Config{ClientID: "coldchain-gateway"},
		},
		NATS:            NATS{Listen: "127.0.0.1:4222", Streams: journal.DefaultConfig()},
		Ingest:          ingest.DefaultConfig(),
		Alerts:          alert.DefaultConfig(),
		Anchor:          anchor.DefaultConfig(),
		Custody:         custody.DefaultConfig(),
		EPCIS:           epcis.DefaultOptions(),
		Devices:         device.DefaultConfig(),
		Chain:           evm.DefaultConfig(),
		Store:           Store{Writer: store.DefaultConfig(), Influx: influx.DefaultConfig()},
		Cluster:         cluster.DefaultConfig(),
		ShutdownTimeout: 15 * time.Second,
	}
}

// Load returns the configuration from path (none when empty) and the
// environment, validated. lookup reads the environment (os.LookupEnv).
func Load(path string, lookup func(string) (string, bool)) (Config, error) {
	cfg := Default()
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		expanded, err := expand(string(raw), lookup)
		if err != nil {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
		dec := yaml.NewDecoder(strings.NewReader(expanded))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, errEOF) {
			return cfg, fmt.Errorf("config %s: %w", path, nameKeys(err, expanded))
		}
	}
	if err := applyEnv(reflect.ValueOf(&cfg).Elem(), "COLDCHAIN", lookup); err != nil {
		return cfg, err
	}
	if cfg.Cluster.Enabled && cfg.Cluster.Member == "" {
		cfg.Cluster.Member = hostMember()
	}
	return cfg, cfg.Validate()
}

// hostMember is the host name as a cluster member name: characters other
// than letters, digits, '-' and '_' become '-'.
func hostMember() string {
	h, _ := os.Hostname()
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, h)
}

var varRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expand replaces ${NAME} with the environment variable NAME outside YAML
// comments; a reference to an unset variable is an error.
func expand(text string, lookup func(string) (string, bool)) (string, error) {
	lines := strings.Split(text, "\n")
	for i, line := range lines {
		code, comment := splitComment(line)
		var missing string
		code = varRef.ReplaceAllStringFunc(code, func(ref string) string {
			name := ref[2 : len(ref)-1]
			v, ok := lookup(name)
			if !ok && missing == "" {
				missing = name
			}
			return v
		})
		if missing != "" {
			return "", fmt.Errorf("line %d: environment variable %s is not set (referenced as ${%s})", i+1, missing, missing)
		}
		lines[i] = code + comment
	}
	return strings.Join(lines, "\n"), nil
}

// splitComment splits a YAML line before its comment: a '#' at the start or
// after a space, outside quotes.
func splitComment(line string) (code, comment string) {
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return line[:i], line[i:]
		}
	}
	return line, ""
}

var lineRef = regexp.MustCompile(`line (\d+):`)

// nameKeys adds the key of the offending line to yaml's type errors, which
// give only a line number.
func nameKeys(err error, text string) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	lines := strings.Split(text, "\n")
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		msgs[i] = m
		if sm := lineRef.FindStringSubmatch(m); sm != nil {
			if n, _ := strconv.Atoi(sm[1]); n >= 1 && n <= len(lines) {
				if key, _, ok := strings.Cut(strings.TrimSpace(lines[n-1]), ":"); ok {
					msgs[i] = m + " (key " + strings.TrimPrefix(key, "- ") + ")"
				}
			}
		}
	}
	return errors.New(strings.Join(msgs, "; "))
}

var errEOF = func() error {
	var v struct{}
	return yaml.NewDecoder(bytes.NewReader(nil)).Decode(&v)
}()

var durationType = reflect.TypeOf(time.Duration(0))

// applyEnv overrides every leaf of v from the environment variable named
// after its key path.
func applyEnv(v reflect.Value, prefix string, lookup func(string) (string, bool)) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		fv := v.Field(i)
		if opts == "inline" {
			if err := applyEnv(fv, prefix, lookup); err != nil {
				return err
			}
			continue
		}
		if name == "" || name == "-" {
			continue
		}
		key := prefix + "_" + strings.ToUpper(name)
		if f.Type.Kind() == reflect.Struct {
			if err := applyEnv(fv, key, lookup); err != nil {
				return err
			}
			continue
		}
		s, ok := lookup(key)
		if !ok {
			continue
		}
		if err := setFromString(fv, s); err != nil {
			return fmt.Errorf("environment %s=%q: %w", key, s, err)
		}
	}
	return nil
}

func setFromString(v reflect.Value, s string) error {
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return errors.New("want a duration such as 30s, 10m or 2h")
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return errors.New("want true or false")
		}
		v.SetBool(b)
	case v.CanInt():
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v.OverflowInt(n) {
			return errors.New("want an integer")
		}
		v.SetInt(n)
	case v.CanFloat():
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return errors.New("want a number such as 50 or 2.5")
		}
		v.SetFloat(f)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		var parts []string
		for p := range strings.SplitSeq(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		v.Set(reflect.ValueOf(parts))
	default:
		return fmt.Errorf("cannot set a %s from the environment", v.Type())
	}
	return nil
}

// Validate reports the first invalid setting, naming its key.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("data_dir: must not be empty")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level: must be debug, info, warn or error, got %q", c.Log.Level)
	}
	if c.Log.Format != "console" && c.Log.Format != "json" {
		return fmt.Errorf("log.format: must be console or json, got %q", c.Log.Format)
	}
	if err := c.HTTP.Validate(); err != nil {
		return err
	}
	if err := c.Cluster.Validate(); err != nil {
		return err
	}
	if c.Cluster.Enabled && c.NATS.Embedded() {
		return errors.New("cluster.enabled: needs an external NATS cluster (nats.url); the embedded server is one node")
	}
	if c.MQTT.Embedded() {
		b := c.MQTT.Broker
		if _, _, err := net.SplitHostPort(b.Listen); err != nil && (b.Listen != "" || b.TLSListen == "") {
			return fmt.Errorf("mqtt.listen: %q is not host:port (it may be empty only when mqtt.tls_listen is set)", b.Listen)
		}
		if b.TLSListen != "" {
			if _, _, err := net.SplitHostPort(b.TLSListen); err != nil {
				return fmt.Errorf("mqtt.tls_listen: %q is not host:port", b.TLSListen)
			}
			if b.TLSCert == "" || b.TLSKey == "" {
				return errors.New("mqtt.tls_listen: needs mqtt.tls_cert and mqtt.tls_key (try coldchain certs dev)")
			}
		} else if b.TLSClientCA != "" {
			return errors.New("mqtt.tls_client_ca: needs mqtt.tls_listen")
		}
		if b.DeviceRate < 0 {
			return fmt.Errorf("mqtt.device_rate: must be 0 (no limit) or more, got %g", b.DeviceRate)
		}
		if b.DeviceRate > 0 && b.DeviceBurst < 1 {
			return errors.New("mqtt.device_burst: must be at least 1 with mqtt.device_rate set")
		}
		if c.MQTT.Client.TLS.IsSet() {
			return errors.New("mqtt.client_tls: applies to an external broker (mqtt.url); the embedded broker's own TLS is mqtt.tls_listen, tls_cert and tls_key")
		}
		if c.MQTT.Broker.MaxPacketSize <= c.Ingest.MaxPayload {
			return fmt.Errorf("mqtt.max_packet_size: must exceed ingest.max_payload (%d) so oversize payloads are dead-lettered, not dropped", c.Ingest.MaxPayload)
		}
	} else {
		if !strings.Contains(c.MQTT.Client.URL, "://") {
			return fmt.Errorf("mqtt.url: %q must be a URL such as tcp://host:1883 or ssl://host:8883", c.MQTT.Client.URL)
		}
		if err := c.MQTT.Client.TLS.Validate("mqtt.client_tls"); err != nil {
			return err
		}
		if c.MQTT.Client.ClientID == "" {
			return errors.New("mqtt.client_id: must not be empty with an external broker (the session is kept under it)")
		}
	}
	if c.NATS.Embedded() {
		if _, _, err := net.SplitHostPort(c.NATS.Listen); err != nil {
			return fmt.Errorf("nats.listen: %q is not host:port", c.NATS.Listen)
		}
		if c.NATS.TLS.IsSet() {
			return errors.New("nats.tls: applies to an external NATS (nats.url); the embedded one listens on loopback without TLS")
		}
	} else if err := c.NATS.TLS.Validate("nats.tls"); err != nil {
		return err
	}
	if err := c.NATS.Streams.Validate(); err != nil {
		return err
	}
	if err := c.Ingest.Validate(); err != nil {
		return err
	}
	if err := c.Alerts.Validate(); err != nil {
		return err
	}
	if err := c.Custody.Validate(); err != nil {
		return err
	}
	if err := c.EPCIS.Validate(); err != nil {
		return err
	}
	if err := c.Devices.Validate(); err != nil {
		return err
	}
	if err := c.Anchor.Validate(); err != nil {
		return err
	}
	if err := c.Chain.Validate(); err != nil {
		return err
	}
	if err := c.Store.Writer.Validate(); err != nil {
		return err
	}
	if c.Store.Writer.Kind == store.KindInflux {
		if err := c.Store.Influx.Validate(); err != nil {
			return err
		}
	}
	if c.ShutdownTimeout <= 0 {
		return errors.New("shutdown_timeout: must be positive")
	}
	return nil
}

// NATSTokenFile is where the gateway keeps its embedded NATS server's
// token when nats.token is empty; the registry commands read it there.
func (c Config) NATSTokenFile() string { return filepath.Join(c.DataDir, "nats.token") }

// NATSStoreDir is where the embedded server keeps JetStream.
func (c Config) NATSStoreDir() string { return filepath.Join(c.DataDir, "nats") }

// StoreDir is where the embedded time-series store keeps its data.
func (c Config) StoreDir() string { return filepath.Join(c.DataDir, "store") }

// ClientOptions are the options every connection to an external NATS
// needs: its token and TLS (nats.token, nats.tls).
func (n NATS) ClientOptions() ([]nats.Option, error) {
	var opts []nats.Option
	if n.Token != "" {
		opts = append(opts, nats.Token(n.Token))
	}
	tc, err := n.TLS.Config("nats.tls")
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, nats.Secure(tc))
	}
	return opts, nil
}
