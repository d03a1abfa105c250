package gateway

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

var metricName = regexp.MustCompile(`\bcoldchain_[a-z_]+\b`)

// metricTypes returns each metric a running gateway exposes on /metrics,
// with its type.
func metricTypes(t *testing.T, addr string) map[string]string {
	t.Helper()
	code, body := apiDo(t, "http://"+addr, "GET", "/metrics", "", "")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	types := map[string]string{}
	for _, line := range strings.Split(body, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			types[f[2]] = f[3]
		}
	}
	return types
}

// exposed reports whether the gateway exposes the series name queries:
// a metric, or a histogram's _bucket, _sum or _count.
func exposed(types map[string]string, name string) bool {
	if _, ok := types[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && types[base] == "histogram" {
			return true
		}
	}
	return false
}

// TestDeployQueriesExist loads the Grafana dashboard and the Prometheus
// rules under deploy/ and checks that every coldchain metric they query
// is one the gateway exposes, that every panel queries something, and
// that every rule has what an on-call person needs (severity, summary,
// description, a valid for).
func TestDeployQueriesExist(t *testing.T) {
	gw := startGateway(t, testConfig(t.TempDir()))
	defer gw.stop()
	types := metricTypes(t, gw.g.HTTPAddr())

	raw, err := os.ReadFile("../deploy/grafana/coldchain.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	if dash.UID == "" || len(dash.Panels) < 8 {
		t.Fatalf("dashboard uid %q with %d panels", dash.UID, len(dash.Panels))
	}
	var queried []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, tg := range p.Targets {
			names := metricName.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: %q names no coldchain metric", p.Title, tg.Expr)
			}
			for _, n := range names {
				if !exposed(types, n) {
					t.Errorf("panel %q queries %s, which /metrics does not expose", p.Title, n)
				}
				queried = append(queried, n)
			}
		}
	}
	// The panels the operations issue asks for.
	for _, n := range []string{"coldchain_ingest_records_total", "coldchain_ingest_rejected_total", "coldchain_ingest_duplicates_total",
		"coldchain_ingest_publish_seconds_bucket", "coldchain_detector_pending", "coldchain_store_pending", "coldchain_alerts_open",
		"coldchain_anchor_epochs_unfinished"} {
		if !slices.Contains(queried, n) {
			t.Errorf("no panel queries %s", n)
		}
	}

	raw, err = os.ReadFile("../deploy/prometheus/coldchain-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatalf("rules: %v", err)
	}
	var alerts []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			if _, err := time.ParseDuration(r.For); err != nil {
				t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
			}
			if !slices.Contains([]string{"critical", "warning", "info"}, r.Labels["severity"]) || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: severity %q, summary %q, description %q", r.Alert, r.Labels["severity"], r.Annotations["summary"], r.Annotations["description"])
			}
			for _, n := range metricName.FindAllString(r.Expr, -1) {
				if !exposed(types, n) {
					t.Errorf("%s queries %s, which /metrics does not expose", r.Alert, n)
				}
			}
		}
	}
	for _, want := range []string{"ColdchainDetectorLagGrowing", "ColdchainStoreLagGrowing", "ColdchainAnchorNotFinal", "ColdchainDeadLetterSpike"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no rule %s (have %v)", want, alerts)
		}
	}
}
