package dashboard

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/ferrybus/ferry/internal/logging"
)

// cookieName is the login cookie: an HMAC of the token under the
// process's secret, so it is worthless after a restart and never holds
// the token itself.
const cookieName = "ferry_dashboard"

// authorized reports whether r may be served: always without a token,
// else with the bearer token or the login cookie (compared in constant time).
func (h *Handler) authorized(r *http.Request) bool {
	if h.cfg.Token == "" {
		return true
	}
	if auth := r.Header.Get("Authorization"); auth != "" {
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		return ok && subtle.ConstantTimeCompare([]byte(tok), []byte(h.cfg.Token)) == 1
	}
	c, err := r.Cookie(cookieName)
	return err == nil && hmac.Equal([]byte(c.Value), []byte(h.sessionValue()))
}

func (h *Handler) sessionValue() string {
	m := hmac.New(sha256.New, h.secret)
	m.Write([]byte("session\x00" + h.cfg.Token))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "login", &page{Title: "Log in", Data: map[string]any{"Failed": false}})
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	if !h.checkCSRF(w, r) {
		return
	}
	if h.cfg.Token == "" {
		http.Redirect(w, r, h.cfg.Prefix+"/", http.StatusSeeOther)
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.PostFormValue("token")), []byte(h.cfg.Token)) != 1 {
		h.log.Warn("dashboard login refused", "remote", r.RemoteAddr)
		h.render(w, r, http.StatusUnauthorized, "login", &page{Title: "Log in", Data: map[string]any{"Failed": true}})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: h.sessionValue(), Path: h.cfg.Prefix + "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, h.cfg.Prefix+"/", http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if !h.checkCSRF(w, r) {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: h.cfg.Prefix + "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, h.cfg.Prefix+"/login", http.StatusSeeOther)
}

// csrfToken is a fresh token for a form posting to action: a random nonce
// and its HMAC under the process's secret, bound to the action's path so
// that a token of one form does not work for another.
func (h *Handler) csrfToken(action string) string {
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		panic("dashboard: crypto/rand failed: " + err.Error()) // crypto/rand does not fail on supported systems
	}
	return base64.RawURLEncoding.EncodeToString(nonce) + "." + h.csrfMAC(nonce, action)
}

func (h *Handler) csrfMAC(nonce []byte, action string) string {
	m := hmac.New(sha256.New, h.secret)
	m.Write(nonce)
	m.Write([]byte("\x00" + csrfScope(action)))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfScope is what a token is bound to: the action's path, or for the
// actions of one form with several buttons (retry or discard the
// selected messages) the path's family.
func csrfScope(action string) string {
	for _, family := range []string{"/errors/", "/queue/"} {
		if strings.HasPrefix(action, family) {
			return family
		}
	}
	return action
}

// checkCSRF checks the form's csrf field against the request's path, in
// constant time, answering 403 when it does not hold.
func (h *Handler) checkCSRF(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	tok := r.PostFormValue("csrf")
	n, mac, ok := strings.Cut(tok, ".")
	nonce, err := base64.RawURLEncoding.DecodeString(n)
	if !ok || err != nil || len(nonce) != 16 || !hmac.Equal([]byte(mac), []byte(h.csrfMAC(nonce, r.URL.Path))) {
		h.fail(w, r, http.StatusForbidden, "missing or bad CSRF token: reload the page and submit the form again")
		return false
	}
	return true
}

// sanitizeLine makes one line of remote text inert for display: control
// characters (terminal escapes among them), line breaks, bidirectional
// overrides and invalid UTF-8 are written as escapes (\u001b, \n…).
// html/template escapes the HTML after it.
func sanitizeLine(s string) string { return logging.Escape(s) }

// sanitizeText is sanitizeLine for multi-line text (bodies, stacks): it
// keeps line breaks and tabs and escapes every other control character.
func sanitizeText(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		parts := strings.Split(strings.TrimSuffix(l, "\r"), "\t")
		for j, p := range parts {
			parts[j] = logging.Escape(p)
		}
		lines[i] = strings.Join(parts, "\t")
	}
	return strings.Join(lines, "\n")
}
