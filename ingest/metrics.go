package ingest

import (
	"github.com/coldchain/coldchain/metrics"
	"github.com/coldchain/coldchain/record"
)

// ingestMetrics are the ingest series of /metrics, resolved once so the
// message path formats no labels.
type ingestMetrics struct {
	messagesVec, recordsVec *metrics.CounterVec
	acceptedVec, dupVec     *metrics.CounterVec
	rejected                map[record.Reason]*metrics.Counter
	inFlight                *metrics.Gauge
	publish                 *metrics.Histogram
	// byTransport caches the per-transport series ("mqtt", "http").
	byTransport              map[string]*transportMetrics
	acceptedBy, duplicatesBy map[record.Kind]*metrics.Counter
}

func newIngestMetrics(reg *metrics.Registry) ingestMetrics {
	m := ingestMetrics{
		messagesVec: reg.Counter("coldchain_ingest_messages_total", "Messages received, by transport.", "transport"),
		recordsVec:  reg.Counter("coldchain_ingest_records_total", "Records received (valid or not), by transport and kind.", "transport", "kind"),
		acceptedVec: reg.Counter("coldchain_ingest_accepted_total", "Records newly stored in JetStream, by kind.", "kind"),
		dupVec:      reg.Counter("coldchain_ingest_duplicates_total", "Records received again and recognised as already stored, by kind.", "kind"),
		rejected:    map[record.Reason]*metrics.Counter{},
		inFlight:    reg.Gauge("coldchain_ingest_in_flight", "Messages being validated and journaled now."),
		publish:     reg.Histogram("coldchain_ingest_publish_seconds", "Time from the start of a message's append until JetStream acknowledged all its records.", metrics.LatencyBuckets),
	}
	rej := reg.Counter("coldchain_ingest_rejected_total", "Records or messages rejected and dead-lettered, by reason.", "reason")
	for _, r := range record.Reasons() {
		m.rejected[r] = rej.With(r.String())
	}
	m.byTransport = map[string]*transportMetrics{}
	for _, t := range []string{"mqtt", "http"} {
		m.byTransport[t] = &transportMetrics{messages: m.messagesVec.With(t),
			readings:  m.recordsVec.With(t, record.KindReading.String()),
			handovers: m.recordsVec.With(t, record.KindHandover.String())}
	}
	m.acceptedBy = map[record.Kind]*metrics.Counter{}
	m.duplicatesBy = map[record.Kind]*metrics.Counter{}
	for _, k := range []record.Kind{record.KindReading, record.KindHandover} {
		m.acceptedBy[k] = m.acceptedVec.With(k.String())
		m.duplicatesBy[k] = m.dupVec.With(k.String())
	}
	return m
}

type transportMetrics struct {
	messages, readings, handovers *metrics.Counter
}

func (m *ingestMetrics) transport(name string) *transportMetrics {
	if t, ok := m.byTransport[name]; ok {
		return t
	}
	// An unexpected transport name is rare; resolve it each time.
	return &transportMetrics{messages: m.messagesVec.With(name),
		readings:  m.recordsVec.With(name, record.KindReading.String()),
		handovers: m.recordsVec.With(name, record.KindHandover.String())}
}

func (m *ingestMetrics) messages(transport string) *metrics.Counter {
	return m.transport(transport).messages
}

func (m *ingestMetrics) records(transport string, k record.Kind) *metrics.Counter {
	if k == record.KindHandover {
		return m.transport(transport).handovers
	}
	return m.transport(transport).readings
}

func (m *ingestMetrics) accepted(k record.Kind) *metrics.Counter {
	if c, ok := m.acceptedBy[k]; ok {
		return c
	}
	return m.acceptedVec.With(k.String())
}

func (m *ingestMetrics) duplicates(k record.Kind) *metrics.Counter {
	if c, ok := m.duplicatesBy[k]; ok {
		return c
	}
	return m.dupVec.With(k.String())
}
