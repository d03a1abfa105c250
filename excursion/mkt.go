package excursion

import (
	"math"
	"time"
)

// Span is a temperature held for a duration, the input of MeanKinetic.
type Span struct {
	TempC float64
	Dur   time.Duration
}

// MeanKinetic returns the time-weighted Mean Kinetic Temperature of spans in
// °C, literally as USP <1079.2> writes it:
//
//	MKT = (ΔH/R) / −ln( Σ dᵢ·e^(−ΔH/(R·Tᵢ)) / Σ dᵢ ),  Tᵢ in kelvin,
//
// with deltaHOverR = ΔH/R in kelvin (10,000 K in USP <1079.2>). Spans with a
// non-positive duration are skipped; with no time at all the result is NaN.
// It is the slow reference for the detector's bucketed MKT.
func MeanKinetic(spans []Span, deltaHOverR float64) float64 {
	var num, den float64
	for _, s := range spans {
		if s.Dur <= 0 {
			continue
		}
		d := s.Dur.Seconds()
		num += d * math.Exp(-deltaHOverR/(s.TempC+zeroCelsius))
		den += d
	}
	if den == 0 {
		return math.NaN()
	}
	return deltaHOverR/-math.Log(num/den) - zeroCelsius
}

const (
	// zeroCelsius is 0 °C in kelvin.
	zeroCelsius = 273.15
	// kineticRef is the reference temperature (5 °C, kelvin) the bucket
	// weights are scaled to: e^(−ΔH/RT) = e^(−ΔH/RTref)·e^(ΔH/R·(1/Tref − 1/T)),
	// so the stored weight e^(ΔH/R·(1/Tref − 1/T)) is near 1 in the 2–8 °C band
	// and fits a float32.
	kineticRef = zeroCelsius + 5
	// kineticCap is the temperature (°C) above which a reading counts as
	// kineticCap in the MKT, so weights stay finite in float32; such a reading
	// has raised instant_high long before.
	kineticCap = 150
	// kineticBuckets is the number of buckets: the window is cut into 24
	// buckets of Window/24, plus the one being filled.
	kineticBuckets = 25
)

// kinetic accumulates the MKT of a trailing window in device-time buckets
// aligned to the Unix epoch. Bucket n covers [n·width, (n+1)·width). The MKT
// at t covers [t − window, t): the buckets head−23 … head whole, and the part
// of bucket head−24 that lies in the window, pro rata (exact when the
// temperature is constant within that bucket, which the known-answer tests
// use). It keeps the sums over the 24 newest buckets as it goes, recomputing
// them whenever a new bucket starts, so both updating and reading are O(1)
// amortised, independent of how many readings the window holds.
type kinetic struct {
	head   int64                   // bucket number of the newest bucket
	hi     int                     // index of bucket head in w and k: head mod kineticBuckets
	w      [kineticBuckets]float32 // Σ weight·seconds
	k      [kineticBuckets]float32 // Σ known seconds
	sw, sk float64                 // Σ w, Σ k over buckets head−23 … head
}

// advance makes bucket n the newest, emptying the buckets it skips.
func (m *kinetic) advance(n int64) {
	if n <= m.head {
		return
	}
	if n-m.head >= kineticBuckets {
		m.w = [kineticBuckets]float32{}
		m.k = [kineticBuckets]float32{}
		m.head, m.hi, m.sw, m.sk = n, int(slot(n)), 0, 0
		return
	}
	for m.head < n {
		m.head++
		if m.hi++; m.hi == kineticBuckets {
			m.hi = 0
		}
		m.w[m.hi], m.k[m.hi] = 0, 0 // it held bucket head − 25
	}
	m.sw, m.sk = 0, 0
	for j, i := 0, m.hi; j < kineticBuckets-1; j++ {
		m.sw += float64(m.w[i])
		m.sk += float64(m.k[i])
		if i--; i < 0 {
			i = kineticBuckets - 1
		}
	}
}

// add records that the temperature was v °C over the known device time [a, b).
func (m *kinetic) add(a, b int64, v float64, c *compiled) {
	x := c.weight(v)
	w := c.width
	if start := m.head * w; a >= start && b <= start+w {
		// The common case: the span lies in the newest bucket.
		d := float64(b-a) / 1e9
		dw, dk := float32(x*d), float32(d)
		m.w[m.hi] += dw
		m.k[m.hi] += dk
		m.sw += float64(dw)
		m.sk += float64(dk)
		return
	}
	if lo := (b/w - kineticBuckets) * w; a < lo {
		a = lo // older buckets would be emptied at once
	}
	for a < b {
		n := a / w
		end := min((n+1)*w, b)
		m.advance(n)
		d := float64(end-a) / 1e9
		dw, dk := float32(x*d), float32(d)
		switch {
		case n == m.head:
			m.w[m.hi] += dw
			m.k[m.hi] += dk
			m.sw += float64(dw)
			m.sk += float64(dk)
		case n > m.head-(kineticBuckets-1):
			// Older than the newest bucket: not reached by in-order
			// spans, kept total for restored states.
			m.w[slot(n)] += dw
			m.k[slot(n)] += dk
			m.sw += float64(dw)
			m.sk += float64(dk)
		}
		a = end
	}
}

// value returns the mean weight over [t − window, t) (NaN without known
// time; see compiled.celsius) and the known device time it rests on, ns.
func (m *kinetic) value(t int64, c *compiled) (ratio float64, known int64) {
	w := c.width
	start := m.head * w
	if t < start || t >= start+w {
		m.advance(t / w)
		start = m.head * w
	}
	frac := min(max(float64(start+w-t)*c.perWidth, 0), 1)
	old := m.hi + 1
	if old == kineticBuckets {
		old = 0
	}
	sw := m.sw + frac*float64(m.w[old])
	sk := m.sk + frac*float64(m.k[old])
	if sk <= 0 {
		return math.NaN(), 0
	}
	return sw / sk, int64(sk * 1e9)
}

// weight returns e^(ΔH/R·(1/Tref − 1/T)) for a reading of v °C, the
// reading's share of the MKT relative to 5 °C (see kineticRef).
//
// Sensors report a few hundred distinct values, so the weights are cached
// in a small direct-mapped table keyed by the exact float64: a hit returns
// the same bits math.Exp would, so results do not depend on the cache.
func (c *compiled) weight(v float64) float64 {
	bits := math.Float64bits(v)
	e := &c.wcache[(bits*0x9E3779B97F4A7C15)>>(64-weightCacheBits)]
	if e.bits == bits {
		return e.w
	}
	k := min(v, kineticCap) + zeroCelsius
	w := 0.0
	if k > 0 {
		w = math.Exp(c.dhr * (1/kineticRef - 1/k))
	}
	e.bits, e.w = bits, w
	return w
}

// weightCacheBits sizes compiled.wcache: 2^10 entries, 16 KiB per detector.
const weightCacheBits = 10

// weightEntry is one cached weight; bits is the float64 it is for, a NaN
// pattern (never a reading) while empty.
type weightEntry struct {
	bits uint64
	w    float64
}

// celsius turns a mean weight into the MKT of USP <1079.2>, °C:
// (ΔH/R) / −ln(mean e^(−ΔH/RT)) = (ΔH/R) / (ΔH/(R·Tref) − ln(mean weight)).
// NaN stays NaN.
func (c *compiled) celsius(ratio float64) float64 {
	return c.dhr/(c.dhr/kineticRef-math.Log(ratio)) - zeroCelsius
}

// slot maps bucket number n, possibly negative, to its array index.
func slot(n int64) int64 {
	return (n%kineticBuckets + kineticBuckets) % kineticBuckets
}
