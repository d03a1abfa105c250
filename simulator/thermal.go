package simulator

import (
	"time"

	"github.com/coldchain/coldchain/record"
)

// The thermal model of a 40 ft reefer loaded with 2–8 °C cargo. It is a
// first-order model of the cargo-space air, stepped every modelStep:
//
//	d(air)/dt = (ambient − air)/tauLeak                 heat through the walls
//	          + on·(supply − air)/tauCool               the compressor, when running
//	          + door·(doorAmbient − air)/tauDoor        air exchange through open doors
//	          + defrost·defrostHeat + heat              heaters, faults
//
// The controller switches the compressor on above setpoint + hysteresis and
// off below setpoint − hysteresis, which draws the saw-tooth of a few
// tenths of a degree real reefers show on their return-air sensor. Every
// defrostEvery it runs the evaporator heaters for defrostFor, postponed
// while the air is warm, which raises the air about 1.3 °C. Probes follow
// the air through a first-order lag: an air probe within minutes, a
// buffered probe (a sensor in a glycol bottle, standing in for the
// product) over an hour, so it lags and damps every spike.
const (
	modelStep    = 30 * time.Second
	setpointC    = 5.0
	hysteresisC  = 0.25  // °C either side of the setpoint
	supplyDropC  = 2.5   // supply air below the setpoint while the compressor runs, °C
	tauCool      = 20.0  // minutes
	tauLeak      = 720.0 // minutes: an insulated, loaded box
	tauDoor      = 60.0  // minutes
	defrostEvery = 6 * time.Hour
	defrostFor   = 18 * time.Minute
	defrostHeat  = 0.07 // °C per minute while the heaters run
	tauAirProbe  = 3.0  // minutes
	tauBuffered  = 60.0 // minutes
)

// forcing is what drives the container's air over one step.
type forcing struct {
	ambient     float64 // outdoor air, °C
	doorAmbient float64 // air that comes in through open doors, °C
	setpoint    float64 // the controller's setpoint, °C
	powered     bool    // the unit has mains or genset power
	door        bool    // the doors are open
	broken      bool    // the compressor has failed
	cutout      bool    // the compressor is held off (high-pressure cut-out)
	heat        float64 // extra heat, °C per minute
}

// thermal is one container's air and controller.
type thermal struct {
	air          float64 // cargo-space (return) air, °C
	supply       float64 // supply air leaving the evaporator, °C
	on           bool    // compressor running
	defrostUntil time.Time
	nextDefrost  time.Time
	mode         record.Mode
}

func newThermal(start time.Time, defrostPhase time.Duration) thermal {
	return thermal{air: setpointC, supply: setpointC, nextDefrost: start.Add(defrostPhase), mode: record.ModeCooling}
}

// step advances the model by modelStep from device time t.
func (c *thermal) step(t time.Time, f forcing) {
	const dt = float64(modelStep) / float64(time.Minute)
	defrost := t.Before(c.defrostUntil)
	if f.door {
		// The door switch ends a defrost: the fans must run.
		c.defrostUntil = time.Time{}
		defrost = false
	}
	if f.powered && !f.broken && !f.cutout && !f.door && !defrost && !t.Before(c.nextDefrost) {
		// A controller defrosts on a timer, but not while it is still
		// pulling the air down.
		if c.air <= f.setpoint {
			c.defrostUntil = t.Add(defrostFor)
			c.nextDefrost = t.Add(defrostEvery)
			defrost = true
		}
	}
	if !f.powered {
		c.defrostUntil = time.Time{}
		defrost = false
	}
	switch {
	case !f.powered || f.broken || f.cutout || defrost:
		c.on = false
	case c.air > f.setpoint+hysteresisC:
		c.on = true
	case c.air < f.setpoint-hysteresisC:
		c.on = false
	}
	d := (f.ambient - c.air) / tauLeak
	switch {
	case c.on:
		c.supply = f.setpoint - supplyDropC
		d += (c.supply - c.air) / tauCool
	case defrost:
		c.supply = c.air + 8 // the evaporator coil is being heated
		d += defrostHeat
	default:
		c.supply = c.air + 0.3
	}
	if f.door {
		d += (f.doorAmbient - c.air) / tauDoor
	}
	d += f.heat
	c.air += d * dt
	switch {
	case !f.powered:
		c.mode = record.ModeOff
	case f.broken || f.cutout:
		c.mode = record.ModeAlarm
	case defrost:
		c.mode = record.ModeDefrost
	default:
		c.mode = record.ModeCooling
	}
}

// probe is one temperature sensor following the container air.
type probe struct {
	kind   record.Probe
	offset float64 // where it sits in the load, °C relative to the return air
	value  float64 // the sensor's temperature, °C
}

func (p *probe) step(air float64) {
	const dt = float64(modelStep) / float64(time.Minute)
	tau := tauAirProbe
	if p.kind == record.ProbeBuffered {
		tau = tauBuffered
	}
	p.value += (air + p.offset - p.value) * dt / tau
}
