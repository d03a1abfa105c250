package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/device"
	"github.com/coldchain/coldchain/record"
)

// Devices is the device registry (device.Registry).
type Devices interface {
	Register(ctx context.Context, d device.Device) (device.Device, error)
	Get(ctx context.Context, id string) (device.Device, error)
	List(ctx context.Context) ([]device.Device, error)
}

var _ Devices = (*device.Registry)(nil)

// maxDeviceBody bounds a POST /v1/devices body.
const maxDeviceBody = 64 << 10

// EnableDevices serves the device registry (package device holds the
// rules):
//
//	GET  /v1/devices        the devices the caller may see: a provider its org's, an admin all
//	GET  /v1/devices/{id}   one device, its calibrations and whether it is in calibration now
//	POST /v1/devices        register a device or add calibrations to it (admin)
//
// orgOf returns the org of a device's login (the identity registry);
// a provider never sees another org's device (404, like a shipment).
// Call it before Serve.
func (s *Server) EnableDevices(reg Devices, orgOf func(ctx context.Context, id string) (string, bool)) {
	d := &devicesAPI{reg: reg, orgOf: orgOf, log: s.log}
	s.HandleFunc("GET /v1/devices", d.list)
	s.HandleFunc("GET /v1/devices/{id}", d.get)
	s.HandleFunc("POST /v1/devices", d.post)
}

type devicesAPI struct {
	reg   Devices
	orgOf func(ctx context.Context, id string) (string, bool)
	log   *zap.Logger
}

// deviceJSON is a device as the API shows it: the record and how it
// stands now.
type deviceJSON struct {
	device.Device
	Status        string `json:"status"`
	InCalibration bool   `json:"in_calibration"`
}

func show(d device.Device, now time.Time) deviceJSON {
	_, in := d.At(now)
	return deviceJSON{Device: d, Status: d.Status(now), InCalibration: in}
}

// sees says whether the request's principal may see device id.
func (d *devicesAPI) sees(r *http.Request, id string) bool {
	scope := auth.ScopeFrom(r.Context())
	switch {
	case scope == nil:
		return false
	case scope.All:
		return true
	case scope.Principal.Org == "" || d.orgOf == nil:
		return false
	}
	org, ok := d.orgOf(r.Context(), id)
	return ok && org == scope.Principal.Org
}

func (d *devicesAPI) unavailable(w http.ResponseWriter, err error) {
	d.log.Warn("device registry", zap.Error(err))
	w.Header().Set("Retry-After", "5")
	writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "the device registry is unavailable, retry later: " + err.Error()})
}

func (d *devicesAPI) list(w http.ResponseWriter, r *http.Request) {
	if !knownParams(w, r.URL.Query()) {
		return
	}
	all, err := d.reg.List(r.Context())
	if err != nil {
		d.unavailable(w, err)
		return
	}
	now := time.Now()
	out := make([]deviceJSON, 0, len(all))
	for _, dev := range all {
		if d.sees(r, dev.ID) {
			out = append(out, show(dev, now))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": out})
}

func (d *devicesAPI) get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !record.ValidID(id) {
		badParam(w, "id", "%q is not a device id (1-64 of A-Z a-z 0-9 _ -)", id)
		return
	}
	notFound := errorBody{Error: fmt.Sprintf("device %q is not registered (coldchain devices register %s --serial S)", id, id)}
	if !d.sees(r, id) {
		writeJSON(w, http.StatusNotFound, notFound)
		return
	}
	dev, err := d.reg.Get(r.Context(), id)
	switch {
	case errors.Is(err, device.ErrUnknown):
		writeJSON(w, http.StatusNotFound, notFound)
	case err != nil:
		d.unavailable(w, err)
	default:
		writeJSON(w, http.StatusOK, show(dev, time.Now()))
	}
}

// post registers the device in the body, or merges it into the one
// registered: the serial must match, calibrations are added once.
func (d *devicesAPI) post(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxDeviceBody))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{Error: fmt.Sprintf("a device record is at most %d bytes", maxDeviceBody)})
		return
	}
	var dev device.Device
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&dev); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "not a device record: " + err.Error() +
			` (want {"id":"L1","serial":"SN-1","model":"…","calibrations":[{"lab":…,"accreditation":…,"reference":…,"cert_sha256":…,"calibrated_at":…,"due_at":…,"uncertainty_c":…}]})`})
		return
	}
	dev.Updated = time.Time{}
	out, err := d.reg.Register(r.Context(), dev)
	switch {
	case errors.Is(err, device.ErrInvalid):
		writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error()})
	case errors.Is(err, device.ErrSerialMismatch):
		writeJSON(w, http.StatusConflict, errorBody{Error: err.Error()})
	case err != nil:
		d.unavailable(w, err)
	default:
		d.log.Info("device registered", zap.String("device", out.ID), zap.String("serial", out.Serial),
			zap.Int("calibrations", len(out.Calibrations)), zap.Stringer("by", principalOf(r)))
		writeJSON(w, http.StatusOK, show(out, time.Now()))
	}
}

// principalOf is who made the request, for logs.
func principalOf(r *http.Request) fmt.Stringer {
	if scope := auth.ScopeFrom(r.Context()); scope != nil {
		return scope.Principal
	}
	return auth.Principal{}
}
