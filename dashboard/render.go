package dashboard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// pageNames are the templates of the pages, each with layout.html.
var pageNames = []string{"overview", "workers", "errors", "errormessage", "message", "queue", "confirm", "result", "login", "error"}

// page is what every template gets.
type page struct {
	Title string
	Nav   string // the active navigation entry
	Data  any
}

func (h *Handler) funcs() template.FuncMap {
	return template.FuncMap{
		"path":   func(p string) string { return h.cfg.Prefix + p },
		"csrf":   h.csrfToken,
		"clean":  sanitizeLine,
		"text":   sanitizeText,
		"authOn": func() bool { return h.cfg.Token != "" },
		"ago": func(t time.Time) string {
			if t.IsZero() {
				return "–"
			}
			return ago(time.Now(), t)
		},
		"age": func(t time.Time) string {
			if t.IsZero() {
				return "–"
			}
			return time.Since(t).Round(time.Second).String()
		},
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "–"
			}
			return t.UTC().Format("2006-01-02 15:04:05.000Z")
		},
		"iso":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"join":  strings.Join,
		"chart": func(c chart, label string) template.HTML { return c.svg(label) },
	}
}

func (h *Handler) parseTemplates() error {
	h.pages = map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(h.funcs()).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("dashboard: template %s: %w", name, err)
		}
		h.pages[name] = t
	}
	return nil
}

// render executes a page (or, with a fragment name, one block of it) into
// a buffer first, so that a failing template never sends half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) {
	h.renderBlock(w, r, status, name, "layout", p)
}

func (h *Handler) renderBlock(w http.ResponseWriter, r *http.Request, status int, name, block string, p *page) {
	var buf bytes.Buffer
	if err := h.pages[name].ExecuteTemplate(&buf, block, p); err != nil {
		h.log.Error("dashboard template failed", "page", name, "err", err)
		http.Error(w, "dashboard: rendering failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// fail renders the error page with a clear message.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	h.render(w, r, status, "error", &page{Title: http.StatusText(status), Data: map[string]any{"Status": status, "Message": msg}})
}

// ago is how long before now t was, rounded for reading.
func ago(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < 0:
		d = 0
	case d >= time.Minute:
		return d.Round(time.Second).String() + " ago"
	}
	return d.Round(100*time.Millisecond).String() + " ago"
}

// bodyView is a body prepared for display: pretty JSON when it is JSON,
// cut to MaxBodyPreview, sanitised.
type bodyView struct {
	Text      string
	Bytes     int
	Truncated bool
	JSON      bool
}

func viewBody(b []byte) bodyView {
	v := bodyView{Bytes: len(b)}
	if len(b) <= 1<<20 && json.Valid(b) {
		var out bytes.Buffer
		if json.Indent(&out, b, "", "  ") == nil {
			b, v.JSON = out.Bytes(), true
		}
	}
	if len(b) > MaxBodyPreview {
		cut := MaxBodyPreview
		for cut > 0 && !utf8.RuneStart(b[cut]) {
			cut--
		}
		b, v.Truncated = b[:cut], true
	}
	v.Text = sanitizeText(string(b))
	return v
}
