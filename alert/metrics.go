package alert

import (
	"github.com/coldchain/coldchain/excursion"
	"github.com/coldchain/coldchain/metrics"
)

type serviceMetrics struct {
	evaluated  *metrics.Counter
	flaggedVec *metrics.CounterVec
	publishVec *metrics.CounterVec
	webhookVec *metrics.CounterVec
	// restoredSeq is the position of the snapshot the detector started
	// from.
	restoredSeq *metrics.Gauge
	sse         *metrics.Gauge
	// deviceRecords counts device records written into shipment logs.
	deviceRecords *metrics.Counter
	// republished counts transitions found already in the alerts stream.
	republished *metrics.Counter
}

func newServiceMetrics(reg *metrics.Registry) serviceMetrics {
	return serviceMetrics{
		evaluated:   reg.Counter("coldchain_detector_readings_total", "Readings evaluated by the excursion detector.").With(),
		flaggedVec:  reg.Counter("coldchain_detector_flagged_total", "Late readings stored and proven but too old to re-evaluate, by status.", "status"),
		publishVec:  reg.Counter("coldchain_alerts_total", "Alert transitions published, by rule and transition.", "rule", "transition"),
		webhookVec:  reg.Counter("coldchain_webhook_deliveries_total", "Webhook delivery attempts, by result.", "result"),
		restoredSeq: reg.Gauge("coldchain_detector_snapshot_restored_seq", "Readings stream position of the snapshot the detector last started from (0: none)."),
		sse:         reg.Gauge("coldchain_alerts_sse_clients", "Clients connected to the alert stream."),
		deviceRecords: reg.Counter("coldchain_device_records_total",
			"Device registry records written into shipment logs (a device's first reading on a shipment, and each registry change after).").With(),
		republished: reg.Counter("coldchain_alerts_republish_skipped_total",
			"Alert transitions the detector computed again after a restart or a takeover and found already in the alerts stream (not published twice).").With(),
	}
}

func (m serviceMetrics) flagged(s excursion.Status) *metrics.Counter {
	return m.flaggedVec.With(s.String())
}

func (m serviceMetrics) published(rule, transition string) *metrics.Counter {
	return m.publishVec.With(rule, transition)
}

func (m serviceMetrics) webhook(result string) *metrics.Counter { return m.webhookVec.With(result) }
