// Package web is the shipper and provider dashboard the gateway serves at
// /: static assets embedded in the binary (no CDN, no build step; what is
// committed is what is served). The page holds no data of its own: it
// reads everything through the HTTP API with the viewer's own token, so it
// shows exactly what that token may see (docs/SECURITY.md).
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed assets
var assets embed.FS

// Routes registers GET / (the page) and GET /assets/{file...} (its script
// and style sheet).
func Routes(mux interface {
	HandleFunc(string, func(http.ResponseWriter, *http.Request))
}) {
	sub, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(sub)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		http.ServeFileFS(w, r, sub, "index.html")
	})
	mux.HandleFunc("GET /assets/{file...}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + r.PathValue("file")
		files.ServeHTTP(w, r2)
	})
}
