// Package report renders a shipment's traceability report: a PDF a QA
// person or a regulator's reviewer reads, made from the shipment's proof
// bundle alone, so that everything it states is what the bundle proves.
// It shows the shipment summary, the temperature chart against the
// profile's band, every excursion with its transitions and
// acknowledgements, the custody timeline, the devices' calibration, the
// anchor, and the exact command that verifies the bundle; the bundle's
// SHA-256 ties the report to the file.
package report

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"codeberg.org/go-pdf/fpdf"

	"github.com/coldchain/coldchain/anchor/bundle"
	"github.com/coldchain/coldchain/custody"
	"github.com/coldchain/coldchain/record"
)

// Options say what the bundle does not.
type Options struct {
	// Low and High bound the shipment's temperature band, °C (the alarm
	// profile's limits); the chart shades it.
	Low, High float64
	// Profile names the band, e.g. "2-8C".
	Profile string
	// BundleFile is the file name the verify command names.
	BundleFile string
	// RPC is the chain's JSON-RPC URL the verify command names; empty
	// prints a placeholder.
	RPC string
	// Generated is the report's date (its PDF creation date too, so the
	// same inputs give the same bytes).
	Generated time.Time
	// Custody is the configuration the custody checks run with.
	Custody custody.Config
}

// content is what the report shows, parsed from the bundle.
type content struct {
	b         *bundle.Bundle
	sum       bundle.Summary
	verifyErr error
	sha       string
	readings  []record.Reading
	byDevice  map[string][]record.Reading
	handovers []record.Handover
	alerts    map[string][]record.Alert // by alert id, transitions in log order
	devices   map[string]record.DeviceRecord
}

// Render writes the report of the bundle raw (its JSON, as downloaded) to
// w. A bundle that does not verify is still reported, with the failure on
// the first page; one that is not a bundle at all is an error.
func Render(w io.Writer, raw []byte, o Options) error {
	b, err := bundle.Decode(raw)
	if err != nil {
		return err
	}
	if b.Records == nil {
		return fmt.Errorf("the bundle discloses one record (a selective proof); a report needs the full bundle (coldchain proof SHIPMENT without --record)")
	}
	c := &content{b: b, alerts: map[string][]record.Alert{}, byDevice: map[string][]record.Reading{}, devices: map[string]record.DeviceRecord{}}
	sum := sha256.Sum256(raw)
	c.sha = hex.EncodeToString(sum[:])
	c.sum, c.verifyErr = bundle.Verify(b)
	for _, data := range b.Records {
		var head struct {
			Type string `json:"type"`
		}
		if json.Unmarshal([]byte(data), &head) != nil {
			continue
		}
		switch head.Type {
		case "reading":
			if r, err := record.ParseReading([]byte(data)); err == nil {
				c.readings = append(c.readings, r)
			}
		case "handover":
			if h, err := record.ParseHandover([]byte(data)); err == nil {
				c.handovers = append(c.handovers, h)
			}
		case "alert":
			if a, err := record.ParseAlert([]byte(data)); err == nil {
				c.alerts[a.ID] = append(c.alerts[a.ID], a)
			}
		case "device":
			if d, err := record.ParseDeviceRecord([]byte(data)); err == nil {
				if have, ok := c.devices[d.Device]; !ok || d.Revision > have.Revision {
					c.devices[d.Device] = d
				}
			}
		}
	}
	slices.SortStableFunc(c.readings, func(x, y record.Reading) int { return x.Time.Compare(y.Time) })
	for _, r := range c.readings {
		c.byDevice[r.Device] = append(c.byDevice[r.Device], r)
	}
	return c.render(w, o)
}

const (
	margin = 15.0
	width  = 210 - 2*margin
)

func (c *content) render(w io.Writer, o Options) error {
	pdf := fpdf.New("P", "mm", "A4", "")
	tr := pdf.UnicodeTranslatorFromDescriptor("") // cp1252: °, ±, –, …
	pdf.SetCatalogSort(true)                      // objects in a fixed order: the same inputs give the same bytes
	pdf.SetMargins(margin, margin, margin)
	pdf.SetAutoPageBreak(true, margin)
	pdf.SetTitle("Traceability report "+c.b.Shipment, true)
	pdf.SetAuthor("coldchain gateway", true)
	pdf.SetCreator("coldchain report", true)
	pdf.SetCreationDate(o.Generated)
	pdf.SetModificationDate(o.Generated)
	pdf.AliasNbPages("{nb}")
	pdf.SetFooterFunc(func() {
		pdf.SetY(-12)
		pdf.SetFont("Helvetica", "", 7)
		pdf.SetTextColor(110, 110, 110)
		pdf.CellFormat(width/2, 5, tr("Shipment "+c.b.Shipment+" · bundle SHA-256 "+c.sha[:16]+"…"), "", 0, "L", false, 0, "")
		pdf.CellFormat(width/2, 5, fmt.Sprintf("page %d of {nb}", pdf.PageNo()), "", 0, "R", false, 0, "")
		pdf.SetTextColor(0, 0, 0)
	})
	pdf.AddPage()
	text := func(style string, size float64, s string) {
		pdf.SetFont("Helvetica", style, size)
		pdf.MultiCell(width, size*0.5, tr(s), "", "L", false)
	}
	heading := func(s string) {
		pdf.Ln(3)
		text("B", 12, s)
		pdf.Ln(1)
	}
	text("B", 16, "Cold-chain traceability report")
	text("", 10, "Shipment "+c.b.Shipment+" · generated "+o.Generated.UTC().Format("2006-01-02 15:04 UTC")+" from its proof bundle")
	pdf.Ln(2)

	// Verification first: it says whether to trust the rest.
	if c.verifyErr != nil {
		pdf.SetTextColor(180, 0, 0)
		text("B", 11, "THE BUNDLE DOES NOT VERIFY: "+c.verifyErr.Error())
		pdf.SetTextColor(0, 0, 0)
	} else {
		text("", 10, fmt.Sprintf("The %d records below hash to the shipment root %s, which epoch %d anchors on chain %d (checked offline when this report was made; run the command at the end to check the chain).",
			c.b.TreeSize, c.b.Root, c.b.Epoch.Number, c.b.Anchor.ChainID))
	}

	heading("Summary")
	c.summary(pdf, tr, o)
	heading("Temperature")
	c.chart(pdf, tr, o)
	heading("Excursions and warnings")
	c.excursions(pdf, tr)
	heading("Chain of custody")
	c.custody(pdf, tr, o)
	heading("Devices and calibration")
	c.calibration(pdf, tr)
	heading("Anchor")
	c.anchor(pdf, tr)
	heading("How to verify this report")
	file := o.BundleFile
	if file == "" {
		file = c.b.Shipment + ".bundle.json"
	}
	rpc := o.RPC
	if rpc == "" {
		rpc = "<JSON-RPC URL of chain " + fmt.Sprint(c.b.Anchor.ChainID) + ">"
	}
	text("", 9, "The report is made from the proof bundle whose SHA-256 is")
	text("B", 9, c.sha)
	text("", 9, "Check the bundle has that hash (sha256sum "+file+"), then verify it, offline and against the chain:")
	pdf.SetFont("Courier", "", 9)
	pdf.MultiCell(width, 4.5, tr("coldchain verify "+file+" --rpc "+rpc), "1", "L", false)
	text("", 8, "coldchain verify recomputes the shipment root from every record, checks the epoch proof and the anchor transaction, and prints the calibration records and readings out of calibration. Nothing in this report is more than the bundle proves.")
	return pdf.Output(w)
}

type translate func(string) string

// table writes rows under a bold header, with column widths in mm.
func table(pdf *fpdf.Fpdf, tr translate, widths []float64, header []string, rows [][]string) {
	if strings.Join(header, "") != "" {
		pdf.SetFont("Helvetica", "B", 8)
		pdf.SetFillColor(230, 236, 242)
		for i, h := range header {
			pdf.CellFormat(widths[i], 5, tr(h), "1", 0, "L", true, 0, "")
		}
		pdf.Ln(-1)
	}
	pdf.SetFont("Helvetica", "", 8)
	for _, row := range rows {
		for i, v := range row {
			pdf.CellFormat(widths[i], 4.5, tr(fit(pdf, tr, v, widths[i]-1)), "1", 0, "L", false, 0, "")
		}
		pdf.Ln(-1)
	}
}

// fit shortens s to fit width mm in the current font.
func fit(pdf *fpdf.Fpdf, tr translate, s string, width float64) string {
	if pdf.GetStringWidth(tr(s)) <= width {
		return s
	}
	r := []rune(s)
	for len(r) > 1 && pdf.GetStringWidth(tr(string(r)+"…")) > width {
		r = r[:len(r)-1]
	}
	return string(r) + "…"
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.UTC().Format("2006-01-02 15:04")
}

// short is a device time in a narrow column: month, day and time (UTC).
func short(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.UTC().Format("01-02 15:04")
}

func (c *content) summary(pdf *fpdf.Fpdf, tr translate, o Options) {
	kinds := make([]string, 0, len(c.sum.Kinds))
	for k, n := range c.sum.Kinds {
		kinds = append(kinds, fmt.Sprintf("%d %s", n, k))
	}
	sort.Strings(kinds)
	alarms, warnings := 0, 0
	for _, ts := range c.alerts {
		switch ts[0].Severity {
		case "alarm":
			alarms++
		case "warning":
			warnings++
		}
	}
	tempRange := "–"
	if len(c.readings) > 0 {
		tempRange = fmt.Sprintf("%.1f … %.1f °C", c.sum.MinTempC, c.sum.MaxTempC)
	}
	rows := [][]string{
		{"Shipment", c.b.Shipment},
		{"Records", fmt.Sprintf("%d in the log (%s)", c.b.TreeSize, strings.Join(kinds, ", "))},
		{"Device time", stamp(c.sum.First) + " … " + stamp(c.sum.Last) + " UTC"},
		{"Devices", fmt.Sprintf("%d: %s", len(c.byDevice), strings.Join(slices.Sorted(mapsKeys(c.byDevice)), ", "))},
		{"Temperatures", tempRange},
		{"Profile", fmt.Sprintf("%s: %.1f … %.1f °C", o.Profile, o.Low, o.High)},
		{"Alerts", fmt.Sprintf("%d alarms, %d warnings", alarms, warnings)},
		{"Signed readings", fmt.Sprintf("%d signed by their device, %d unsigned", c.sum.Signed, c.sum.Unsigned)},
	}
	for _, d := range slices.Sorted(mapsKeys(c.byDevice)) {
		if m, ok := mkt(c.byDevice[d]); ok {
			rows = append(rows, []string{"MKT " + d, fmt.Sprintf("%.2f °C (time-weighted, USP <1079.2>, dH/R = 10,000 K)", m)})
		}
	}
	table(pdf, tr, []float64{40, width - 40}, []string{"", ""}, rows)
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// mkt is the mean kinetic temperature of readings in time order, each
// weighted by the time to the next (capped at twice the median spacing, so
// a gap weighs nothing it did not measure), USP <1079.2>, °C.
func mkt(rs []record.Reading) (float64, bool) {
	if len(rs) < 2 {
		return 0, false
	}
	gaps := make([]float64, 0, len(rs)-1)
	for i := 1; i < len(rs); i++ {
		gaps = append(gaps, rs[i].Time.Sub(rs[i-1].Time).Seconds())
	}
	sorted := slices.Clone(gaps)
	slices.Sort(sorted)
	limit := 2 * sorted[len(sorted)/2]
	const dhr = 10000.0
	var num, den float64
	for i, g := range gaps {
		wgt := math.Min(g, limit)
		if wgt <= 0 {
			continue
		}
		num += wgt * math.Exp(-dhr/(rs[i].TempC+273.15))
		den += wgt
	}
	if den == 0 || num == 0 {
		return 0, false
	}
	return dhr/-math.Log(num/den) - 273.15, true
}

var palette = [][3]int{{31, 119, 180}, {214, 39, 40}, {44, 160, 44}, {148, 103, 189}, {140, 86, 75}, {23, 190, 207}}

// chart draws every device's readings against device time, the band
// shaded, alarm spans shaded red and warning spans amber; a gap longer
// than three times the median spacing is left a gap.
func (c *content) chart(pdf *fpdf.Fpdf, tr translate, o Options) {
	if len(c.readings) == 0 {
		pdf.SetFont("Helvetica", "", 9)
		pdf.MultiCell(width, 4.5, "No readings in the bundle.", "", "L", false)
		return
	}
	const h = 70.0
	x0, y0 := margin+12, pdf.GetY()+2
	cw := width - 12
	t0, t1 := c.readings[0].Time, c.readings[len(c.readings)-1].Time
	if !t1.After(t0) {
		t1 = t0.Add(time.Minute)
	}
	lo, hi := math.Min(c.sum.MinTempC, o.Low)-1, math.Max(c.sum.MaxTempC, o.High)+1
	xOf := func(t time.Time) float64 { return x0 + cw*t.Sub(t0).Seconds()/t1.Sub(t0).Seconds() }
	yOf := func(v float64) float64 { return y0 + h - h*(v-lo)/(hi-lo) }
	// Band, alert spans, frame.
	pdf.SetFillColor(226, 244, 226)
	pdf.Rect(x0, yOf(o.High), cw, yOf(o.Low)-yOf(o.High), "F")
	// Warnings first, alarms over them: an alarm's span shows red where
	// both hold.
	ids := slices.Sorted(mapsKeys(c.alerts))
	slices.SortStableFunc(ids, func(x, y string) int {
		return strings.Compare(c.alerts[y][0].Severity, c.alerts[x][0].Severity) // "warning" > "alarm"
	})
	for _, id := range ids {
		// The span is the latest transition the detector decided (an
		// acknowledgement carries no figures of its own); one still open
		// runs to the last reading.
		var a record.Alert
		for _, tr := range c.alerts[id] {
			if tr.Transition != "acknowledged" {
				a = tr
			}
		}
		if a.ID == "" || a.Shipment != c.b.Shipment || a.Rule == "calibration" || a.Rule == "unregistered_device" || a.Transition == "retracted" {
			continue
		}
		end := a.End
		if a.Transition == "opened" || a.Transition == "reopened" || a.Transition == "revised" {
			end = t1
		}
		if !end.After(a.Start) {
			continue
		}
		if a.Severity == "alarm" {
			pdf.SetFillColor(250, 215, 215)
		} else {
			pdf.SetFillColor(252, 236, 200)
		}
		pdf.SetAlpha(0.7, "Normal")
		pdf.Rect(xOf(a.Start), y0, math.Max(xOf(end)-xOf(a.Start), 0.3), h, "F")
		pdf.SetAlpha(1, "Normal")
	}
	pdf.SetDrawColor(120, 120, 120)
	pdf.SetLineWidth(0.2)
	pdf.Rect(x0, y0, cw, h, "D")
	pdf.SetFont("Helvetica", "", 7)
	for v := math.Ceil(lo); v <= hi; v += math.Max(1, math.Round((hi-lo)/8)) {
		pdf.Line(x0-1, yOf(v), x0, yOf(v))
		pdf.Text(x0-9, yOf(v)+1, tr(fmt.Sprintf("%.0f °C", v)))
	}
	for i := 0; i <= 4; i++ {
		t := t0.Add(time.Duration(float64(t1.Sub(t0)) * float64(i) / 4))
		pdf.Text(xOf(t)-10, y0+h+4, t.UTC().Format("01-02 15:04"))
	}
	// Lines, downsampled to at most two points (min and max) per 0.25 mm.
	devices := slices.Sorted(mapsKeys(c.byDevice))
	for i, d := range devices {
		col := palette[i%len(palette)]
		pdf.SetDrawColor(col[0], col[1], col[2])
		pdf.SetLineWidth(0.3)
		rs := c.byDevice[d]
		gap := gapLimit(rs)
		for _, seg := range downsample(rs, gap, t1.Sub(t0)/time.Duration(cw*4)) {
			for j := 1; j < len(seg); j++ {
				pdf.Line(xOf(seg[j-1].Time), yOf(seg[j-1].TempC), xOf(seg[j].Time), yOf(seg[j].TempC))
			}
			if len(seg) == 1 {
				pdf.Circle(xOf(seg[0].Time), yOf(seg[0].TempC), 0.3, "D")
			}
		}
		pdf.SetTextColor(col[0], col[1], col[2])
		pdf.Text(x0+2+float64(i)*45, y0-1, tr(fit(pdf, tr, d, 43)))
		pdf.SetTextColor(0, 0, 0)
	}
	pdf.SetDrawColor(0, 0, 0)
	pdf.SetY(y0 + h + 7)
	pdf.SetFont("Helvetica", "", 7)
	pdf.MultiCell(width, 3.5, tr(fmt.Sprintf("Green: the %s band (%.1f … %.1f °C). Red: alarm spans; amber: warning spans. Device time, UTC. Gaps in the data are not bridged.", o.Profile, o.Low, o.High)), "", "L", false)
}

// gapLimit is the spacing beyond which two readings are not joined.
func gapLimit(rs []record.Reading) time.Duration {
	if len(rs) < 2 {
		return time.Hour
	}
	gaps := make([]time.Duration, 0, len(rs)-1)
	for i := 1; i < len(rs); i++ {
		gaps = append(gaps, rs[i].Time.Sub(rs[i-1].Time))
	}
	slices.Sort(gaps)
	return 3 * max(gaps[len(gaps)/2], time.Second)
}

// downsample splits rs (time order) at gaps longer than gap and keeps, per
// bucket of the given width, the first, minimum and maximum reading, in
// time order: the extremes an excursion is made of survive.
func downsample(rs []record.Reading, gap, bucket time.Duration) [][]record.Reading {
	bucket = max(bucket, time.Second)
	var out [][]record.Reading
	var seg []record.Reading
	var b []record.Reading
	flush := func() {
		if len(b) == 0 {
			return
		}
		lo, hi := b[0], b[0]
		for _, r := range b {
			if r.TempC < lo.TempC {
				lo = r
			}
			if r.TempC > hi.TempC {
				hi = r
			}
		}
		keep := []record.Reading{b[0], lo, hi}
		slices.SortStableFunc(keep, func(x, y record.Reading) int { return x.Time.Compare(y.Time) })
		for i, r := range keep {
			if i == 0 || !r.Time.Equal(keep[i-1].Time) {
				seg = append(seg, r)
			}
		}
		b = b[:0]
	}
	var start time.Time
	for i, r := range rs {
		if i > 0 && r.Time.Sub(rs[i-1].Time) > gap {
			flush()
			out = append(out, seg)
			seg = nil
		}
		if len(b) > 0 && r.Time.Sub(start) >= bucket {
			flush()
		}
		if len(b) == 0 {
			start = r.Time
		}
		b = append(b, r)
	}
	flush()
	if len(seg) > 0 {
		out = append(out, seg)
	}
	return out
}

func (c *content) excursions(pdf *fpdf.Fpdf, tr translate) {
	ids := slices.Collect(mapsKeys(c.alerts))
	slices.SortFunc(ids, func(x, y string) int {
		return cmpOr(c.alerts[x][0].Start.Compare(c.alerts[y][0].Start), strings.Compare(x, y))
	})
	if len(ids) == 0 {
		pdf.SetFont("Helvetica", "", 9)
		pdf.MultiCell(width, 4.5, "None: no alert was raised on this shipment's readings or handovers.", "", "L", false)
		return
	}
	var rows [][]string
	for _, id := range ids {
		ts := c.alerts[id]
		for _, a := range ts {
			what := ""
			switch {
			case a.Transition == "acknowledged":
				what = "by " + a.By
				if a.Comment != "" {
					what += ": " + a.Comment
				}
			default:
				if a.PeakC.Set {
					what = fmt.Sprintf("peak %.1f °C", a.PeakC.V)
				}
				if a.Beyond > 0 {
					what += fmt.Sprintf(", %s beyond", a.Beyond.Round(time.Minute))
				}
				if a.MKTC.Set {
					what += fmt.Sprintf(", MKT %.2f °C", a.MKTC.V)
				}
			}
			rows = append(rows, []string{a.Rule, a.Severity, a.Device, a.Transition, short(a.Start), short(a.At), strings.TrimPrefix(what, ", ")})
		}
	}
	table(pdf, tr, []float64{26, 12, 28, 21, 18, 18, width - 123}, []string{"rule", "severity", "device", "transition", "start", "at", "figures / acknowledgement"}, rows)
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

func (c *content) custody(pdf *fpdf.Fpdf, tr translate, o Options) {
	pdf.SetFont("Helvetica", "", 9)
	if len(c.handovers) == 0 {
		pdf.MultiCell(width, 4.5, "No handover was recorded for this shipment.", "", "L", false)
		return
	}
	rs := make([]custody.Reading, len(c.readings))
	for i, r := range c.readings {
		rs[i] = custody.Reading{Device: r.Device, Time: r.Time, TempC: r.TempC}
	}
	tl := custody.Build(c.b.Shipment, slices.Clone(c.handovers), rs, c.sum.Last, o.Custody)
	var rows [][]string
	for _, p := range tl.Custody {
		to := "now"
		if p.To != nil {
			to = stamp(*p.To)
		}
		confirmed := "yes"
		if !p.Confirmed {
			confirmed = "no"
		}
		rows = append(rows, []string{p.Party, p.Site, stamp(p.From), to, p.Seal, p.Owner, confirmed})
	}
	table(pdf, tr, []float64{40, 26, 24, 24, 24, 24, width - 162}, []string{"held by", "site", "from", "to", "seal", "owner", "confirmed"}, rows)
	pdf.Ln(2)
	counts := map[custody.Result]int{}
	var failed [][]string
	for _, f := range tl.Checks {
		counts[f.Result]++
		if f.Result == custody.Fail {
			failed = append(failed, []string{f.Rule, f.Handover, f.Detail})
		}
	}
	pdf.SetFont("Helvetica", "", 9)
	pdf.MultiCell(width, 4.5, tr(fmt.Sprintf("Custody checks: %d passed, %d failed, %d pending, %d unverified.",
		counts[custody.Pass], counts[custody.Fail], counts[custody.Pending], counts[custody.Unverified])), "", "L", false)
	if len(failed) > 0 {
		table(pdf, tr, []float64{34, 30, width - 64}, []string{"failed check", "handover", "detail"}, failed)
	}
}

func (c *content) calibration(pdf *fpdf.Fpdf, tr translate) {
	pdf.SetFont("Helvetica", "", 9)
	if len(c.sum.Calibrations) == 0 && len(c.devices) == 0 {
		pdf.MultiCell(width, 4.5, "No device of this shipment is in the gateway's device registry: nothing states how its sensors were calibrated.", "", "L", false)
		return
	}
	var rows [][]string
	for _, cal := range c.sum.Calibrations {
		src := "not anchored"
		if cal.Anchored {
			src = fmt.Sprintf("anchored (log record %d)", cal.Record)
		}
		rows = append(rows, []string{cal.Device, cal.Serial, cal.Lab + ", " + cal.Accreditation, stamp(cal.CalibratedAt)[:10] + " … " + stamp(cal.DueAt)[:10],
			fmt.Sprintf("±%.2g °C", cal.UncertaintyC), src})
	}
	for _, d := range slices.Sorted(mapsKeys(c.devices)) {
		if len(c.devices[d].Calibrations) == 0 {
			rows = append(rows, []string{d, c.devices[d].Serial, "never calibrated", "–", "–", "anchored"})
		}
	}
	table(pdf, tr, []float64{34, 24, 54, 36, 16, width - 164}, []string{"device", "serial", "lab, accreditation", "valid", "uncertainty", "record"}, rows)
	pdf.Ln(1)
	for _, d := range slices.Sorted(mapsKeys(c.sum.OutOfCalibration)) {
		pdf.SetTextColor(180, 0, 0)
		pdf.MultiCell(width, 4.5, tr(fmt.Sprintf("%d readings of %s were taken outside every calibration window (first: %s): proven, but not calibrated evidence.",
			c.sum.OutOfCalibration[d], d, c.sum.FirstOut[d])), "", "L", false)
		pdf.SetTextColor(0, 0, 0)
	}
	for _, cal := range c.sum.Calibrations {
		pdf.SetFont("Helvetica", "", 7)
		pdf.MultiCell(width, 3.5, tr(cal.Device+" certificate SHA-256 "+cal.CertSHA256+", reference "+cal.Reference), "", "L", false)
	}
}

func (c *content) anchor(pdf *fpdf.Fpdf, tr translate) {
	a := c.b.Anchor
	rows := [][]string{
		{"Shipment root", c.b.Root.String()},
		{"Records covered", fmt.Sprint(c.b.TreeSize)},
		{"Epoch", fmt.Sprintf("%d of %d shipments; root %s", c.b.Epoch.Number, c.b.Epoch.Entries, c.b.Epoch.Root)},
		{"Previous epoch", c.b.Epoch.Prev.String()},
		{"Chain", fmt.Sprint(a.ChainID)},
		{"Contract", a.Contract},
		{"Transaction", a.Tx},
		{"Block", fmt.Sprintf("%d at %s UTC, %s when the bundle was written", a.Block, stamp(time.Unix(a.BlockTime, 0)), a.State)},
	}
	pdf.SetFont("Helvetica", "", 8)
	table(pdf, tr, []float64{32, width - 32}, []string{"", ""}, rows)
}
