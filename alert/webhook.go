package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/record"
)

// WebhookConfig is one HTTP endpoint that receives alert transitions.
type WebhookConfig struct {
	URL string `yaml:"url"`
	// Secret keys the HMAC-SHA256 signature of every body, sent as
	// X-Coldchain-Signature: sha256=<hex>.
	Secret string `yaml:"secret"`
	// Shipments, when not empty, limits delivery to these shipments.
	Shipments []string `yaml:"shipments"`
}

// Signature returns the X-Coldchain-Signature value for body.
func Signature(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// webhook delivers the alerts stream to one endpoint through its own
// durable consumer: a slow or failing endpoint delays only itself, never
// the detector, and resumes where it stopped after a restart.
type webhook struct {
	cfg    WebhookConfig
	client *http.Client
	log    *zap.Logger
	m      serviceMetrics
}

func newWebhook(cfg WebhookConfig, log *zap.Logger, m serviceMetrics) *webhook {
	return &webhook{cfg: cfg, client: &http.Client{Timeout: 10 * time.Second}, log: log.With(zap.String("url", cfg.URL)), m: m}
}

// durable names the webhook's consumer after its URL.
func (h *webhook) durable() string {
	sum := sha256.Sum256([]byte(h.cfg.URL))
	return "coldchain-webhook-" + hex.EncodeToString(sum[:6])
}

func (h *webhook) run(ctx context.Context, j Journal) error {
	return j.Consume(ctx, record.KindAlert, journal.ConsumeOptions{Durable: h.durable(), Batch: 1}, func(ctx context.Context, batch []journal.Msg) error {
		for _, m := range batch {
			if err := h.deliver(ctx, m); err != nil {
				return err
			}
		}
		return nil
	})
}

// statusError is an HTTP answer other than 2xx.
type statusError struct{ status int }

func (e statusError) Error() string { return fmt.Sprintf("endpoint answered %d", e.status) }

// deliver posts one transition. 2xx is delivered; 408, 429 and 5xx and
// network errors are retried (by returning an error, journal.Consume backs
// off and delivers the same transition again); any other answer is logged
// and skipped, so one bad transition does not stop the feed.
func (h *webhook) deliver(ctx context.Context, m journal.Msg) error {
	if len(h.cfg.Shipments) > 0 {
		a, err := record.ParseAlert(m.Data)
		if err != nil || !slices.Contains(h.cfg.Shipments, a.Shipment) {
			return nil
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.URL, bytes.NewReader(m.Data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "coldchain-webhook/1")
	req.Header.Set("X-Coldchain-Event", m.ID)
	req.Header.Set("X-Coldchain-Signature", Signature(h.cfg.Secret, m.Data))
	resp, err := h.client.Do(req)
	if err != nil {
		h.m.webhook("error").Inc()
		return fmt.Errorf("webhook %s: %w", h.cfg.URL, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		h.m.webhook("delivered").Inc()
		return nil
	case s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500:
		h.m.webhook("retried").Inc()
		return fmt.Errorf("webhook %s: %w", h.cfg.URL, statusError{s})
	default:
		h.m.webhook("rejected").Inc()
		h.log.Error("webhook refused an alert; skipping it", zap.String("event", m.ID), zap.Int("status", s))
		return nil
	}
}
