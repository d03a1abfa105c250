package ingest

import (
	"github.com/coldchain/coldchain/metrics"
	"github.com/coldchain/coldchain/record"
)

// ingestMetrics are the ingest series of /metrics, resolved once so the
// message path does no map lookups for them.
type ingestMetrics struct {
	messagesVec, recordsVec *metrics.CounterVec
	acceptedVec, dupVec     *metrics.CounterVec
	rejected                map[record.Reason]*metrics.Counter
	inFlight                *metrics.Gauge
	publish                 *metrics.Histogram
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
	for _, k := range []record.Kind{record.KindReading, record.KindHandover} {
		m.accepted(k)
		m.duplicates(k)
	}
	return m
}

func (m *ingestMetrics) messages(transport string) *metrics.Counter {
	return m.messagesVec.With(transport)
}

func (m *ingestMetrics) records(transport string, k record.Kind) *metrics.Counter {
	return m.recordsVec.With(transport, k.String())
}

func (m *ingestMetrics) accepted(k record.Kind) *metrics.Counter {
	return m.acceptedVec.With(k.String())
}

func (m *ingestMetrics) duplicates(k record.Kind) *metrics.Counter { return m.dupVec.With(k.String()) }
