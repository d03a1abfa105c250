package excursion_test

import (
	"fmt"
	"time"

	"github.com/coldchain/coldchain/excursion"
)

// A reefer at 9 °C for half an hour raises the single-event alarm at the
// device time its delay ran out; the caller publishes the events.
func Example() {
	d, err := excursion.New(excursion.DefaultConfig(), excursion.DefaultProfile())
	if err != nil {
		panic(err)
	}
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var events []excursion.Event
	for i := range 8 {
		at := start.Add(time.Duration(i) * 5 * time.Minute)
		s := excursion.Sample{Seq: uint64(i), Device: "reefer-7", Time: at.UnixNano(), TempC: 9}
		events, _, err = d.Observe(events[:0], s)
		if err != nil {
			panic(err)
		}
		for _, e := range events {
			fmt.Println(e.Transition, e.Rule, e.Severity, time.Unix(0, e.End).UTC().Format("15:04"), e.Beyond)
		}
	}
	// Output:
	// opened pre_alarm_high warning 00:00 0s
	// opened single_event_high alarm 00:30 30m0s
}
