package journal

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/coldchain/coldchain/record"
)

// DeadLetter is rejected input kept with its original bytes so a provider
// can see exactly what was sent and why it was refused.
type DeadLetter struct {
	Err    *record.Error
	Source string // "mqtt:<topic>" or "http:<path>"
	// Org is the sender's org when it logged in (a device's, a token's):
	// its providers may list the dead letter.
	Org      string
	Received time.Time
	Raw      []byte
}

// headerRoom is what a dead letter's headers may take of the server's
// maximum payload; the original bytes get the rest.
const headerRoom = 4096

// DeadLetter stores dead letters and returns once JetStream has them all.
// A dead letter's message id is derived from its source, position and
// bytes, so a redelivered message does not store its dead letters twice.
func (j *Journal) DeadLetter(ctx context.Context, dls []DeadLetter) error {
	limit := int(j.nc.MaxPayload()) - headerRoom
	futures := make([]jetstream.PubAckFuture, 0, len(dls))
	for _, dl := range dls {
		raw := dl.Raw
		h := nats.Header{
			HeaderReason:   []string{dl.Err.Reason.String()},
			HeaderSource:   []string{dl.Source},
			HeaderReceived: []string{dl.Received.UTC().Format(time.RFC3339Nano)},
			HeaderIndex:    []string{strconv.Itoa(dl.Err.Index)},
			HeaderDetail:   []string{dl.Err.Detail},
		}
		if dl.Err.Field != "" {
			h.Set(HeaderField, dl.Err.Field)
		}
		if dl.Org != "" {
			h.Set(HeaderOrg, dl.Org)
		}
		if len(raw) > limit {
			h.Set(HeaderTruncated, strconv.Itoa(len(raw)))
			raw = raw[:limit]
		}
		sum := sha256.New()
		sum.Write([]byte(dl.Source))
		sum.Write([]byte{0})
		sum.Write([]byte(strconv.Itoa(dl.Err.Index)))
		sum.Write([]byte{0})
		sum.Write(dl.Raw)
		h.Set(jetstream.MsgIDHeader, "dl-"+hex.EncodeToString(sum.Sum(nil)[:16]))
		f, err := j.js.PublishMsgAsync(&nats.Msg{Subject: SubjectDeadLetter(dl.Err.Reason), Header: h, Data: raw})
		if err != nil {
			return fmt.Errorf("publish dead letter: %w", err)
		}
		futures = append(futures, f)
	}
	if err := waitAll(ctx, futures); err != nil {
		return fmt.Errorf("publish dead letter: %w", err)
	}
	return nil
}

// DeadLetterEntry is a stored dead letter as the API lists it.
type DeadLetterEntry struct {
	Seq      uint64    `json:"seq"`
	Stored   time.Time `json:"stored"`
	Received string    `json:"received"`
	Reason   string    `json:"reason"`
	Field    string    `json:"field,omitempty"`
	Index    int       `json:"index"`
	Detail   string    `json:"detail"`
	Source   string    `json:"source"`
	Org      string    `json:"org,omitempty"`
	// Payload is the original bytes when they are UTF-8 text;
	// PayloadBase64 holds them otherwise.
	Payload       string `json:"payload,omitempty"`
	PayloadBase64 string `json:"payload_base64,omitempty"`
	// Size is the original size in bytes; Truncated tells whether only its
	// beginning was kept.
	Size      int  `json:"size"`
	Truncated bool `json:"truncated,omitempty"`
}

// DeadLetters returns up to limit dead letters, newest first, optionally
// only those of one reason.
// With org set, only the dead letters of senders of that org are listed.
func (j *Journal) DeadLetters(ctx context.Context, limit int, reason, org string) ([]DeadLetterEntry, error) {
	info, err := j.dead.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("dead letter stream: %w", err)
	}
	out := []DeadLetterEntry{}
	subject := ""
	if reason != "" {
		subject = "coldchain.deadletters." + reason
	}
	// Bound the scan so a filter that matches little cannot read the whole
	// stream in one request.
	budget := max(limit*50, 1000)
	for seq := info.State.LastSeq; seq >= info.State.FirstSeq && seq > 0 && len(out) < limit && budget > 0; seq-- {
		budget--
		m, err := j.dead.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("dead letter %d: %w", seq, err)
		}
		if subject != "" && m.Subject != subject {
			continue
		}
		if org != "" && m.Header.Get(HeaderOrg) != org {
			continue
		}
		out = append(out, deadLetterEntry(m))
	}
	return out, nil
}

func deadLetterEntry(m *jetstream.RawStreamMsg) DeadLetterEntry {
	h := m.Header
	e := DeadLetterEntry{
		Seq: m.Sequence, Stored: m.Time.UTC(), Received: h.Get(HeaderReceived),
		Reason: strings.TrimPrefix(m.Subject, "coldchain.deadletters."), Field: h.Get(HeaderField),
		Detail: h.Get(HeaderDetail), Source: h.Get(HeaderSource), Org: h.Get(HeaderOrg), Size: len(m.Data),
	}
	e.Index, _ = strconv.Atoi(h.Get(HeaderIndex))
	if n, err := strconv.Atoi(h.Get(HeaderTruncated)); err == nil {
		e.Size, e.Truncated = n, true
	}
	if utf8.Valid(m.Data) {
		e.Payload = string(m.Data)
	} else {
		e.PayloadBase64 = base64.StdEncoding.EncodeToString(m.Data)
	}
	return e
}
