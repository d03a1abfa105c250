// Package influx is the InfluxDB store, on influxdb-client-go/v2: line
// protocol to /api/v2/write (InfluxDB 2.x, and 1.8+ through its v2
// compatibility API) with device timestamps, queries in Flux through the
// client's query API. Operations teams chart the same series in Grafana.
//
// # Layout
//
//	measurement reading   tags shipment, device
//	                      fields temp_c, seq (integer), rh, lat, lon,
//	                             battery_v, door_open (boolean), probe
//	                             (string), reefer.setpoint_c,
//	                             reefer.supply_c, reefer.return_c,
//	                             reefer.mode (string), ext.<key> (as sent)
//	measurement handover  tags shipment, site, kind
//	                      fields id, from_party, to_party, lat, lon,
//	                             temp_c, seal, note
//
// Field names are the members' JSON paths (docs/RECORDS.md). seq is an
// integer field holding the uint64's bits as an int64 (InfluxDB 1.x has no
// unsigned fields), so seqs above 2⁶³−1 read as negative in Flux and come
// back exact through this package.
//
// # Point identity
//
// InfluxDB identifies a point by measurement, tags and time: a second point
// with the same ones replaces the first field by field. The writer's
// redeliveries rely on that (the same record twice is one point). But two
// readings of one device with the same time and different seqs are two
// readings, and replacing one with the other would lose a reading and mix
// their fields. So a point's time is the device time plus a nudge under a
// microsecond: seq mod 1000 nanoseconds for a reading, FNV-1a(id) mod 1000
// for a handover. Reads subtract it again (seq and id are fields), so
// device times come back exact. The nudge is never negative, so a reading
// on a bucket boundary stays in its bucket; only a reading within a
// microsecond before a boundary can land in the next. Two readings of a
// device still collide if their times are under a microsecond apart and
// their nudges make up the difference, or if they share a time and their
// seqs are equal mod 1000: no logger does either.
package influx

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"net/url"
	"strconv"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	ihttp "github.com/influxdata/influxdb-client-go/v2/api/http"
	"go.uber.org/zap"

	"github.com/coldchain/coldchain/pki"
	"github.com/coldchain/coldchain/record"
	"github.com/coldchain/coldchain/store"
)

// Token is an InfluxDB API token: it prints as [redacted] so it never
// reaches a log.
type Token string

// String returns [redacted], or "" for no token.
func (t Token) String() string {
	if t == "" {
		return ""
	}
	return "[redacted]"
}

// GoString is String, for %#v.
func (t Token) GoString() string { return t.String() }

// Config is the InfluxDB connection.
type Config struct {
	// URL is the server, e.g. http://influxdb:8086.
	URL string `yaml:"url"`
	// Org is the organisation (any value on InfluxDB 1.8).
	Org string `yaml:"org"`
	// Bucket is the bucket, or "database/retention-policy" on 1.8.
	Bucket string `yaml:"bucket"`
	// Token authenticates; on 1.8 with auth enabled it is "user:password".
	// Set it from the environment (COLDCHAIN_STORE_INFLUX_TOKEN or
	// ${VAR} in the file).
	Token Token `yaml:"token"`
	// Timeout bounds one write or query.
	Timeout time.Duration `yaml:"timeout"`
	// TLS checks an https:// InfluxDB against a CA of its own and
	// presents a client certificate to one that asks for it.
	TLS pki.ClientTLS `yaml:"tls"`
}

// DefaultConfig returns the defaults: nothing to connect to, 10 s timeout.
func DefaultConfig() Config { return Config{Timeout: 10 * time.Second} }

// Validate reports the first invalid setting, naming its key.
func (c Config) Validate() error {
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		return errors.New("store.influx.url: must be set with store.kind influx (COLDCHAIN_STORE_INFLUX_URL)")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("store.influx.url: %q must be http://host:port or https://host:port", c.URL)
	case c.Org == "":
		return errors.New("store.influx.org: must be set (any value on InfluxDB 1.8) (COLDCHAIN_STORE_INFLUX_ORG)")
	case c.Bucket == "":
		return errors.New("store.influx.bucket: must be set, e.g. coldchain or, on 1.8, coldchain/autogen (COLDCHAIN_STORE_INFLUX_BUCKET)")
	case c.Timeout < time.Second:
		return fmt.Errorf("store.influx.timeout: must be at least 1s, got %s", c.Timeout)
	case c.TLS.IsSet() && u.Scheme != "https":
		return fmt.Errorf("store.influx.tls: applies to an https:// url, not %q", c.URL)
	}
	return c.TLS.Validate("store.influx.tls")
}

// Store is the InfluxDB store. It is safe for concurrent use.
type Store struct {
	cfg    Config
	opts   store.Options
	client influxdb2.Client
	write  api.WriteAPIBlocking
	query  api.QueryAPI
	log    *zap.Logger
}

var _ store.Store = (*Store)(nil)

// New returns a store writing to and querying cfg's bucket. It does not
// connect: a server that is down is only an error on use.
func New(cfg Config, opts store.Options, log *zap.Logger) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := influxdb2.DefaultOptions().
		SetHTTPRequestTimeout(uint(cfg.Timeout.Seconds())).
		SetLogLevel(0).
		SetApplicationName("coldchain")
	tc, err := cfg.TLS.Config("store.influx.tls")
	if err != nil {
		return nil, err
	}
	if tc != nil {
		o.SetTLSConfig(tc)
	}
	c := influxdb2.NewClientWithOptions(cfg.URL, string(cfg.Token), o)
	return &Store{cfg: cfg, opts: opts, client: c, write: c.WriteAPIBlocking(cfg.Org, cfg.Bucket),
		query: c.QueryAPI(cfg.Org), log: log}, nil
}

// Name returns "influx".
func (s *Store) Name() string { return store.KindInflux }

// Close releases the client's connections.
func (s *Store) Close() error {
	s.client.Close()
	return nil
}

// Ping reports whether the server answers.
func (s *Store) Ping(ctx context.Context) error {
	ok, err := s.client.Ping(ctx)
	if err != nil {
		return fmt.Errorf("influx %s: %w", s.cfg.URL, err)
	}
	if !ok {
		return fmt.Errorf("influx %s: ping failed", s.cfg.URL)
	}
	return nil
}

// ---------------------------------------------------------------- writes

// readingNudge and handoverNudge are what is added to the device time to
// make a point's time unique (see the package comment).
func readingNudge(seq uint64) time.Duration { return time.Duration(seq % 1000) }

func handoverNudge(id string) time.Duration {
	h := fnv.New32a()
	h.Write([]byte(id))
	return time.Duration(h.Sum32() % 1000)
}

// Write sends the batch as one line-protocol request. A refusal of the
// points (400, 413, 422) is a permanent *store.WriteError; anything else,
// including no answer, is transient.
func (s *Store) Write(ctx context.Context, b store.Batch) error {
	if b.Len() == 0 {
		return nil
	}
	body := make([]byte, 0, b.Len()*256)
	for i := range b.Readings {
		body = AppendReading(body, &b.Readings[i])
	}
	for i := range b.Handovers {
		body = AppendHandover(body, &b.Handovers[i])
	}
	body = body[:len(body)-1] // the last newline
	err := s.write.WriteRecord(ctx, string(body))
	if err == nil {
		return nil
	}
	return classify(err)
}

// classify turns the client's error into the writer's decision.
func classify(err error) error {
	we := &store.WriteError{Err: err}
	var he *ihttp.Error
	if errors.As(err, &he) {
		we.Status = he.StatusCode
		we.RetryAfter = time.Duration(he.RetryAfter) * time.Second
		switch he.StatusCode {
		case 400, 413, 422:
			// The points: a type conflict, a point outside the bucket's
			// retention, a body too large (split, it passes).
			we.Permanent = true
		}
		// 401, 403, 404 (a wrong token or bucket) are not the points'
		// fault: they wait in the journal until the configuration is
		// fixed. 429 and 5xx are the server's load or state.
		if he.Err != nil {
			we.Err = he.Err
		}
	}
	return we
}

// AppendReading appends the reading's line, newline included.
func AppendReading(b []byte, r *record.Reading) []byte {
	b = append(b, "reading,device="...)
	b = appendTagValue(b, r.Device)
	b = append(b, ",shipment="...)
	b = appendTagValue(b, r.Shipment)
	b = append(b, " temp_c="...)
	b = appendFloat(b, r.TempC)
	b = append(b, ",seq="...)
	b = strconv.AppendInt(b, int64(r.Seq), 10)
	b = append(b, 'i')
	b = appendOptFloat(b, "rh", r.RH)
	b = appendOptFloat(b, "lat", r.Lat)
	b = appendOptFloat(b, "lon", r.Lon)
	b = appendOptFloat(b, "battery_v", r.BatteryV)
	if r.DoorOpen.Set {
		b = append(b, ",door_open="...)
		b = strconv.AppendBool(b, r.DoorOpen.V)
	}
	if r.Probe != 0 {
		b = appendStringField(b, "probe", r.Probe.String())
	}
	b = appendOptFloat(b, "reefer.setpoint_c", r.Reefer.SetpointC)
	b = appendOptFloat(b, "reefer.supply_c", r.Reefer.SupplyC)
	b = appendOptFloat(b, "reefer.return_c", r.Reefer.ReturnC)
	if r.Reefer.Mode != 0 {
		b = appendStringField(b, "reefer.mode", r.Reefer.Mode.String())
	}
	for _, e := range r.Ext {
		key := "ext." + e.Key
		switch e.Type {
		case record.ExtString:
			b = appendStringField(b, key, e.Str)
		case record.ExtNumber:
			b = appendOptFloat(b, key, record.Some(e.Num))
		case record.ExtBool:
			b = append(b, ',')
			b = appendKey(b, key)
			b = append(b, '=')
			b = strconv.AppendBool(b, e.Bool)
		}
	}
	b = append(b, ' ')
	b = strconv.AppendInt(b, r.Time.Add(readingNudge(r.Seq)).UnixNano(), 10)
	return append(b, '\n')
}

// AppendHandover appends the handover's line, newline included.
func AppendHandover(b []byte, h *record.Handover) []byte {
	b = append(b, "handover,kind="...)
	b = appendTagValue(b, h.Kind.String())
	b = append(b, ",shipment="...)
	b = appendTagValue(b, h.Shipment)
	b = append(b, ",site="...)
	b = appendTagValue(b, h.Site)
	b = append(b, " id="...)
	b = appendStringValue(b, h.ID)
	b = appendStringField(b, "from_party", h.FromParty)
	b = appendStringField(b, "to_party", h.ToParty)
	b = appendOptFloat(b, "lat", h.Lat)
	b = appendOptFloat(b, "lon", h.Lon)
	b = appendOptFloat(b, "temp_c", h.TempC)
	if h.Seal != "" {
		b = appendStringField(b, "seal", h.Seal)
	}
	if h.Note != "" {
		b = appendStringField(b, "note", h.Note)
	}
	if h.QCResult != "" {
		b = appendStringField(b, "qc_result", h.QCResult)
	}
	if h.DocSHA256 != "" {
		b = appendStringField(b, "doc_sha256", h.DocSHA256)
	}
	if h.Owner != "" {
		b = appendStringField(b, "owner", h.Owner)
	}
	if h.Final {
		b = append(b, ",final=true"...)
	}
	b = append(b, ' ')
	b = strconv.AppendInt(b, h.Time.Add(handoverNudge(h.ID)).UnixNano(), 10)
	return append(b, '\n')
}

// appendFloat writes a float field value: line protocol reads a number
// without a suffix as a float. 'g' keeps the shortest exact form.
func appendFloat(b []byte, f float64) []byte {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		// "5" would do, "5.0" says float to every reader.
		return strconv.AppendFloat(b, f, 'f', 1, 64)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

func appendOptFloat(b []byte, key string, v record.Opt[float64]) []byte {
	if !v.Set {
		return b
	}
	b = append(b, ',')
	b = appendKey(b, key)
	b = append(b, '=')
	return appendFloat(b, v.V)
}

func appendStringField(b []byte, key, v string) []byte {
	b = append(b, ',')
	b = appendKey(b, key)
	b = append(b, '=')
	return appendStringValue(b, v)
}

// appendStringValue quotes a string field value: '"' and '\' are escaped.
func appendStringValue(b []byte, v string) []byte {
	b = append(b, '"')
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '"' || c == '\\' {
			b = append(b, '\\')
		}
		b = append(b, v[i])
	}
	return append(b, '"')
}

// appendKey escapes a tag or field key: commas, equals signs and spaces.
func appendKey(b []byte, k string) []byte { return appendTagValue(b, k) }

func appendTagValue(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case ',', '=', ' ', '\\':
			b = append(b, '\\', c)
		default:
			b = append(b, c)
		}
	}
	return b
}
