package simulator

import (
	"math"
	"time"
)

// place is where a shipment is, for its ambient temperature and power.
type place uint8

const (
	atWarehouse place = iota + 1 // plugged in at a bonded warehouse yard
	atTerminal                   // in a terminal's reefer stack, plugged in
	atSea                        // on a vessel, plugged in
	onRoad                       // on a truck, powered by a clip-on genset
)

// site is a bonded warehouse or container terminal.
type site struct {
	id    string // record id of the site (the handover's site member)
	party string // who holds custody while the container is there
	lat   float64
	lon   float64
	place place
	// ambient is the mean outdoor temperature, °C.
	ambient float64
}

// leg is one stretch of a route: a stay at a site, or a move along
// waypoints (lat, lon pairs) to the next stop.
type leg struct {
	site    *site        // the stay's site; nil for a move
	path    [][2]float64 // a move's waypoints, from the last site to the next
	carrier string       // who holds custody during a move
	place   place        // atSea or onRoad for a move
	dur     time.Duration
}

// route is Shenzhen (Qianhai bonded zone) → Yantian → Singapore
// (transshipment) → Jebel Ali → Jebel Ali Free Zone, about 20 days, the way
// Chinese biologics reach the Gulf.
var route = func() []leg {
	qianhai := &site{id: "CN-QHBZ-CW1", party: "Qianhai Cold Chain Bonded Logistics", lat: 22.5152, lon: 113.8931, place: atWarehouse, ambient: 29}
	yantian := &site{id: "CN-YTN-T3", party: "Yantian International Container Terminals", lat: 22.5762, lon: 114.2809, place: atTerminal, ambient: 31}
	singapore := &site{id: "SG-PSA-PPJ", party: "PSA Singapore Pasir Panjang", lat: 1.2750, lon: 103.7850, place: atTerminal, ambient: 31}
	jebelAli := &site{id: "AE-JEA-T2", party: "DP World Jebel Ali Terminal 2", lat: 25.0200, lon: 55.0600, place: atTerminal, ambient: 35}
	jafz := &site{id: "AE-JAFZ-CW2", party: "JAFZ Pharma Bonded Store", lat: 24.9870, lon: 55.1160, place: atWarehouse, ambient: 35}
	return []leg{
		{site: qianhai, dur: 10 * time.Hour},
		{path: [][2]float64{{22.5152, 113.8931}, {22.56, 114.10}, {22.5762, 114.2809}}, carrier: "Shenzhen Reefer Haulage", place: onRoad, dur: 3 * time.Hour},
		{site: yantian, dur: 20 * time.Hour},
		{path: [][2]float64{{22.5762, 114.2809}, {22.2, 114.5}, {12.0, 110.5}, {4.0, 105.5}, {1.22, 104.0}, {1.2750, 103.7850}}, carrier: "Ocean Reefer Line", place: atSea, dur: 5 * 24 * time.Hour},
		{site: singapore, dur: 30 * time.Hour},
		{path: [][2]float64{{1.2750, 103.7850}, {2.5, 101.5}, {5.9, 95.0}, {5.8, 80.5}, {12.0, 62.0}, {22.5, 60.0}, {26.4, 56.6}, {25.3, 55.4}, {25.0200, 55.0600}}, carrier: "Ocean Reefer Line", place: atSea, dur: 11 * 24 * time.Hour},
		{site: jebelAli, dur: 20 * time.Hour},
		{path: [][2]float64{{25.0200, 55.0600}, {25.00, 55.09}, {24.9870, 55.1160}}, carrier: "Gulf Cold Trucking", place: onRoad, dur: 2 * time.Hour},
		{site: jafz, dur: 0}, // the last stay lasts until the end
	}
}()

// routeLength is the time from the first departure to the last arrival.
var routeLength = func() time.Duration {
	var d time.Duration
	for _, l := range route {
		d += l.dur
	}
	return d
}()

// where is the position and surroundings of a shipment at one moment.
type where struct {
	leg     int // index into route
	lat     float64
	lon     float64
	place   place
	ambient float64 // °C, with the daily cycle
	// sinceArrival and untilDeparture time a stay's events; untilDeparture
	// is negative for the last stay.
	sinceArrival, untilDeparture time.Duration
}

// locate returns where a shipment is at route time r ≥ 0 (time since it
// arrived at its first site) and UTC time t.
func locate(r time.Duration, t time.Time) where {
	var w where
	at := time.Duration(0)
	for i := range route {
		last := i == len(route)-1
		if last || r < at+route[i].dur {
			w.leg, w.sinceArrival = i, r-at
			w.untilDeparture = at + route[i].dur - r
			if last {
				w.untilDeparture = -1
			}
			break
		}
		at += route[i].dur
	}
	l := &route[w.leg]
	if l.site != nil {
		w.lat, w.lon, w.place, w.ambient = l.site.lat, l.site.lon, l.site.place, l.site.ambient
	} else {
		w.place = l.place
		frac := float64(w.sinceArrival) / float64(l.dur)
		w.lat, w.lon = along(l.path, frac)
		w.ambient = 28
		if l.place == onRoad {
			w.ambient = route[w.leg-1].site.ambient
		}
	}
	// The daily cycle, warmest mid-afternoon local solar time; bigger on a
	// quay or road than at sea.
	amp := 4.0
	if w.place == atSea {
		amp = 1.5
	}
	hours := float64(t.Hour()) + float64(t.Minute())/60 + w.lon/15
	w.ambient += amp * math.Sin(2*math.Pi*(hours-9)/24)
	return w
}

// along returns the point a fraction frac of the way along path, by
// straight lines in degrees (good enough to draw on a map).
func along(path [][2]float64, frac float64) (lat, lon float64) {
	var total float64
	for i := 1; i < len(path); i++ {
		total += math.Hypot(path[i][0]-path[i-1][0], path[i][1]-path[i-1][1])
	}
	want := min(max(frac, 0), 1) * total
	for i := 1; i < len(path); i++ {
		d := math.Hypot(path[i][0]-path[i-1][0], path[i][1]-path[i-1][1])
		if want <= d || i == len(path)-1 {
			f := 0.0
			if d > 0 {
				f = min(want/d, 1)
			}
			return path[i-1][0] + f*(path[i][0]-path[i-1][0]), path[i-1][1] + f*(path[i][1]-path[i-1][1])
		}
		want -= d
	}
	return path[0][0], path[0][1]
}
