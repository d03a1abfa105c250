package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRoutes: the page comes with a content security policy that allows
// only the gateway itself (no CDN, no inline script), its assets are
// served with their types, and nothing outside the assets is reachable.
func TestRoutes(t *testing.T) {
	mux := http.NewServeMux()
	Routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path string) (*http.Response, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	resp, page := get("/")
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != 200 || !strings.Contains(page, `<script src="/assets/app.js">`) || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("/: %d, CSP %q", resp.StatusCode, csp)
	}
	for path, typ := range map[string]string{"/assets/app.js": "text/javascript", "/assets/style.css": "text/css"} {
		if resp, _ := get(path); resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), typ) {
			t.Errorf("%s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	for _, path := range []string{"/assets/../web.go", "/assets/%2e%2e/web.go", "/assets/nope.js", "/web.go"} {
		if resp, body := get(path); resp.StatusCode == 200 {
			t.Errorf("%s served: %.80s", path, body)
		}
	}
	// No inline script or style in the page: the policy forbids them.
	if strings.Contains(page, "<script>") || strings.Contains(page, "style=") {
		t.Error("the page has inline script or style")
	}
}
