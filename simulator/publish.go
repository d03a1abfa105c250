package simulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// Stats counts what a publisher did. MQTT gives no answer beyond the PUBACK
// (which the gateway sends once a message is durable: stored or
// dead-lettered), so Accepted, Duplicates and Rejected are HTTP's answers.
type Stats struct {
	Messages   atomic.Int64 // messages (MQTT) or requests (HTTP) sent
	Records    atomic.Int64 // records in them
	Acked      atomic.Int64 // PUBACKs, or HTTP answers 202, 400 and 413
	Accepted   atomic.Int64 // HTTP: records stored
	Duplicates atomic.Int64 // HTTP: records already stored
	Rejected   atomic.Int64 // HTTP: records refused
	Errors     atomic.Int64 // messages never acknowledged
	// Mismatches counts HTTP answers that contradict the ground truth: a
	// refusal the truth does not expect, or with another reason.
	Mismatches atomic.Int64

	mu      sync.Mutex
	lastErr string
}

func (s *Stats) fail(err error) {
	s.Errors.Add(1)
	s.mu.Lock()
	s.lastErr = err.Error()
	s.mu.Unlock()
}

// LastError returns the most recent publishing error, or "".
func (s *Stats) LastError() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("publisher closed")

// MQTTConfig configures an MQTT publisher.
type MQTTConfig struct {
	// URL is the broker, e.g. tcp://127.0.0.1:1883.
	URL string
	// ClientID prefixes the client ids, one per connection.
	ClientID string
	// Connections is how many connections messages are spread over; a
	// device's messages always use the same one.
	Connections int
	// InFlight bounds the messages awaiting their PUBACK.
	InFlight int
	// AckTimeout is how long a PUBACK may take before the message counts
	// as an error.
	AckTimeout time.Duration
}

// MQTT publishes messages at QoS 1 and counts their PUBACKs.
type MQTT struct {
	cfg     MQTTConfig
	clients []paho.Client
	stats   *Stats
	// pending holds the tokens awaiting their PUBACK, in publish order; its
	// capacity is the in-flight window, so a full channel holds the sender
	// back.
	pending chan pendingToken
	done    chan struct{}
	mu      sync.Mutex
	closed  bool
}

type pendingToken struct {
	tok   paho.Token
	flush chan struct{} // set on a flush marker instead of tok
}

// DialMQTT connects cfg.Connections clients and returns the publisher. Its
// acknowledgement waiter runs until Close.
func DialMQTT(ctx context.Context, cfg MQTTConfig, stats *Stats) (*MQTT, error) {
	cfg.Connections = max(cfg.Connections, 1)
	cfg.InFlight = max(cfg.InFlight, 1)
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 30 * time.Second
	}
	p := &MQTT{cfg: cfg, stats: stats, pending: make(chan pendingToken, cfg.InFlight), done: make(chan struct{})}
	for i := range cfg.Connections {
		opts := paho.NewClientOptions().AddBroker(cfg.URL).SetClientID(fmt.Sprintf("%s-%d", cfg.ClientID, i)).
			SetCleanSession(true).SetAutoReconnect(true).SetConnectTimeout(10 * time.Second).SetWriteTimeout(10 * time.Second).
			SetMaxReconnectInterval(5 * time.Second)
		c := paho.NewClient(opts)
		tok := c.Connect()
		select {
		case <-tok.Done():
		case <-ctx.Done():
		}
		if err := tok.Error(); err != nil || ctx.Err() != nil {
			for _, c := range p.clients {
				c.Disconnect(100)
			}
			if err == nil {
				err = ctx.Err()
			}
			if errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) || errors.Is(err, packets.ErrorRefusedNotAuthorised) {
				// The simulated fleet shares connections and has no
				// per-device credentials.
				return nil, fmt.Errorf("mqtt connect %s: %w: the broker admits only registered devices; a simulated fleet needs anonymous access (on the embedded broker: mqtt.allow_anonymous: true, or COLDCHAIN_MQTT_ALLOW_ANONYMOUS=true)", cfg.URL, err)
			}
			return nil, fmt.Errorf("mqtt connect %s: %w", cfg.URL, err)
		}
		p.clients = append(p.clients, c)
	}
	go p.wait()
	return p, nil
}

// wait takes PUBACKs in publish order until pending is closed.
func (p *MQTT) wait() {
	defer close(p.done)
	for pt := range p.pending {
		if pt.flush != nil {
			close(pt.flush)
			continue
		}
		switch {
		case !pt.tok.WaitTimeout(p.cfg.AckTimeout):
			p.stats.fail(fmt.Errorf("no PUBACK within %v", p.cfg.AckTimeout))
		case pt.tok.Error() != nil:
			p.stats.fail(pt.tok.Error())
		default:
			p.stats.Acked.Add(1)
		}
	}
}

// Publish sends m at QoS 1; it returns once m is in the in-flight window.
func (p *MQTT) Publish(ctx context.Context, m *Message) error {
	key := m.Device
	if key == "" {
		key = m.Shipment
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return p.publish(ctx, int(h.Sum32()%uint32(len(p.clients))), m.Topic(), m.Payload(), m.Records())
}

func (p *MQTT) publish(ctx context.Context, conn int, topic string, payload []byte, records int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	tok := p.clients[conn].Publish(topic, 1, false, payload)
	p.stats.Messages.Add(1)
	p.stats.Records.Add(int64(records))
	select {
	case p.pending <- pendingToken{tok: tok}:
		return nil
	case <-ctx.Done():
		// The message is out; its PUBACK will not be counted.
		return ctx.Err()
	}
}

// Flush waits until every message published so far is acknowledged (or
// counted as an error), or ctx ends.
func (p *MQTT) Flush(ctx context.Context) error {
	ch := make(chan struct{})
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	select {
	case p.pending <- pendingToken{flush: ch}:
	case <-ctx.Done():
		p.mu.Unlock()
		return ctx.Err()
	}
	p.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops taking messages, waits for the outstanding PUBACKs (each at
// most AckTimeout) and disconnects.
func (p *MQTT) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.pending)
	p.mu.Unlock()
	<-p.done
	for _, c := range p.clients {
		c.Disconnect(250)
	}
}

// HTTP posts messages to the gateway's HTTP API, up to Workers at a time.
type HTTP struct {
	// Token, when set, is sent as the bearer token (a provider's, from
	// coldchain tokens create).
	Token  string
	base   string
	client *http.Client
	stats  *Stats
	sem    chan struct{} // one slot per request in flight
	wg     sync.WaitGroup
}

// NewHTTP returns a publisher posting to base (e.g. http://127.0.0.1:8080)
// with at most workers requests in flight.
func NewHTTP(base string, workers int, stats *Stats) *HTTP {
	workers = max(workers, 1)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = workers
	return &HTTP{base: strings.TrimSuffix(base, "/"), client: &http.Client{Transport: tr, Timeout: 60 * time.Second},
		stats: stats, sem: make(chan struct{}, workers)}
}

// Publish posts m's requests; it returns once they are in flight.
func (p *HTTP) Publish(ctx context.Context, m *Message) error {
	for _, req := range m.HTTPRequests() {
		if err := p.start(ctx, req); err != nil {
			return err
		}
	}
	return nil
}

// start sends req once a slot is free; the request runs on its own
// goroutine, which Flush and Close wait for.
func (p *HTTP) start(ctx context.Context, req HTTPRequest) error {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	p.stats.Messages.Add(1)
	p.stats.Records.Add(int64(req.Records))
	p.wg.Add(1)
	go func() {
		defer func() { <-p.sem; p.wg.Done() }()
		p.post(ctx, req)
	}()
	return nil
}

// answer is the gateway's reply to a POST.
type answer struct {
	Accepted   int64  `json:"accepted"`
	Duplicates int64  `json:"duplicates"`
	Error      string `json:"error"`
	Rejected   []struct {
		Reason string `json:"reason"`
		Field  string `json:"field"`
	} `json:"rejected"`
}

// post sends one request, retrying network errors and 5xx answers (the
// request is idempotent) with backoff; 4xx answers are final.
func (p *HTTP) post(ctx context.Context, req HTTPRequest) {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		status, ans, err := p.do(ctx, req)
		if err == nil && status < 500 {
			p.judge(req, status, ans)
			return
		}
		if err == nil {
			err = fmt.Errorf("POST %s: %d %s", req.Path, status, ans.Error)
		}
		if attempt == 5 || ctx.Err() != nil {
			p.stats.fail(err)
			return
		}
		select {
		case <-ctx.Done():
			p.stats.fail(ctx.Err())
			return
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

func (p *HTTP) do(ctx context.Context, req HTTPRequest) (int, answer, error) {
	var ans answer
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+req.Path, bytes.NewReader(req.Body))
	if err != nil {
		return 0, ans, err
	}
	hr.Header.Set("Content-Type", "application/json")
	if p.Token != "" {
		hr.Header.Set("Authorization", "Bearer "+p.Token)
	}
	resp, err := p.client.Do(hr)
	if err != nil {
		return 0, ans, fmt.Errorf("POST %s: %w", req.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, ans, fmt.Errorf("POST %s: %w", req.Path, err)
	}
	_ = json.Unmarshal(body, &ans) // a body that is not ours still has a status
	return resp.StatusCode, ans, nil
}

// judge counts the answer and checks it against the ground truth.
func (p *HTTP) judge(req HTTPRequest, status int, ans answer) {
	p.stats.Acked.Add(1)
	switch status {
	case http.StatusAccepted, http.StatusOK:
		p.stats.Accepted.Add(ans.Accepted)
		p.stats.Duplicates.Add(ans.Duplicates)
		if req.Reject != nil {
			p.stats.Mismatches.Add(1)
		}
	default:
		p.stats.Rejected.Add(int64(req.Records))
		if req.Reject == nil || len(ans.Rejected) > 0 && ans.Rejected[0].Reason != req.Reject.Reason ||
			len(ans.Rejected) == 0 && !strings.Contains(ans.Error, req.Reject.Reason) {
			p.stats.Mismatches.Add(1)
			p.stats.mu.Lock()
			p.stats.lastErr = fmt.Sprintf("POST %s: %d %s %v", req.Path, status, ans.Error, ans.Rejected)
			p.stats.mu.Unlock()
		}
	}
}

// Flush waits until every request sent so far has its answer, or ctx ends.
func (p *HTTP) Flush(ctx context.Context) error {
	// Taking every slot means no request is in flight.
	n := 0
	defer func() {
		for range n {
			<-p.sem
		}
	}()
	for range cap(p.sem) {
		select {
		case p.sem <- struct{}{}:
			n++
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Close waits for the requests in flight and closes idle connections.
func (p *HTTP) Close() {
	p.wg.Wait()
	p.client.CloseIdleConnections()
}
