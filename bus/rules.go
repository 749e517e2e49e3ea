package bus

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
)

// Action is what happens to a message whose handling failed.
type Action string

// The actions a Rule, or an inbox's default for a kind of failure, can take.
const (
	// ActionRetry retries the message by the retry policy, then parks it.
	ActionRetry Action = "retry"
	// ActionDiscard acks the message unhandled: it is logged and counted
	// (Stats.Discarded), then gone.
	ActionDiscard Action = "discard"
	// ActionPark moves the message straight to the error queue.
	ActionPark Action = "park"
)

// Kinds of failure, as recorded in Failure.Kind and matched by Rule.Kinds.
const (
	// KindError is an error returned by a handler.
	KindError = "error"
	// KindPanic is a handler that panicked.
	KindPanic = "panic"
	// KindDecode is a message whose envelope headers or body cannot be decoded.
	KindDecode = "decode"
	// KindNoHandler is a message of a type the endpoint has no handler for.
	KindNoHandler = "no-handler"
	// KindPermanent is an error a handler marked with Permanent.
	KindPermanent = "permanent"
	// KindExpired is a message received after its ExpiresAt.
	KindExpired = "expired"
	// KindOversize is a message whose body is over the inbox's MaxBodyBytes.
	KindOversize = "oversize"
	// KindPoison is a message delivered again and again without an outcome:
	// its handler crashes the process or outlives its lease.
	KindPoison = "poison"
)

// Kinds lists every kind of failure.
func Kinds() []string {
	return []string{KindError, KindPanic, KindDecode, KindNoHandler, KindPermanent, KindExpired, KindOversize, KindPoison}
}

// unretriable kinds fail the same way however often they are tried: a rule
// that says retry parks them instead.
var unretriable = map[string]bool{KindPermanent: true, KindPoison: true, KindExpired: true, KindOversize: true}

// Rule decides what happens to a failed message. An inbox's rules are tried
// in order and the first that matches wins; with none matching, the inbox's
// default for the kind of failure applies (see InboxConfig).
//
// A rule matches when every condition it sets holds: the message type
// matches one of Types, the failure's kind is one of Kinds, its error text
// contains Error and matches ErrorMatches. A rule that sets none matches
// every failure.
//
// Retrying cannot help a permanent, poison, expired or oversize failure: a
// retry rule that matches one parks it instead.
type Rule struct {
	// Types are message type patterns (path.Match: "orders.*", "*").
	Types []string `json:"types,omitempty" koanf:"types"`
	// Kinds are kinds of failure: "error", "panic", "decode", "no-handler",
	// "permanent", "expired", "oversize", "poison".
	Kinds []string `json:"kinds,omitempty" koanf:"kinds"`
	// Error is text the error must contain.
	Error string `json:"error,omitempty" koanf:"error"`
	// ErrorMatches is a regular expression (Go syntax) the error must match.
	ErrorMatches string `json:"errorMatches,omitempty" koanf:"errorMatches"`
	// Action is "retry", "discard" or "park". Required.
	Action Action `json:"action" koanf:"action"`
	// Retry, with action retry, replaces the inbox's retry policy for the
	// messages this rule matches (its own maxAttempts and backoff). The
	// attempt count is the message's, whichever rule counted it.
	Retry *RetryPolicy `json:"retry,omitempty" koanf:"retry"`
}

// compiledRule is a validated Rule.
type compiledRule struct {
	Rule
	re *regexp.Regexp
}

func (r *compiledRule) matches(typ, kind, text string) bool {
	if len(r.Types) > 0 && !slices.ContainsFunc(r.Types, func(p string) bool { ok, _ := path.Match(p, typ); return ok }) {
		return false
	}
	if len(r.Kinds) > 0 && !slices.Contains(r.Kinds, kind) {
		return false
	}
	if r.Error != "" && !strings.Contains(text, r.Error) {
		return false
	}
	if r.re != nil && !r.re.MatchString(text) {
		return false
	}
	return true
}

func validAction(a Action) bool {
	return a == ActionRetry || a == ActionDiscard || a == ActionPark
}

// compileRule validates r; errors name the key within the rule.
func compileRule(r Rule) (compiledRule, error) {
	c := compiledRule{Rule: r}
	if !validAction(r.Action) {
		return c, fmt.Errorf("action: %q, want retry, discard or park", r.Action)
	}
	for i, p := range r.Types {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			return c, fmt.Errorf("types[%d]: bad pattern %q", i, p)
		}
	}
	for i, k := range r.Kinds {
		if !slices.Contains(Kinds(), k) {
			return c, fmt.Errorf("kinds[%d]: unknown kind %q, want one of %s", i, k, strings.Join(Kinds(), ", "))
		}
	}
	if r.ErrorMatches != "" {
		re, err := regexp.Compile(r.ErrorMatches)
		if err != nil {
			return c, fmt.Errorf("errorMatches: %w", err)
		}
		c.re = re
	}
	if r.Retry != nil {
		if r.Action != ActionRetry {
			return c, fmt.Errorf("retry: only for action retry, not %s", r.Action)
		}
		if err := r.Retry.Validate(); err != nil {
			return c, fmt.Errorf("retry.%w", err)
		}
	}
	return c, nil
}

// recovery is an inbox's compiled retry policy, rules and defaults.
type recovery struct {
	retry    RetryPolicy
	rules    []compiledRule
	defaults map[string]Action
	maxBody  int
}

// decision is what recovery says about one failure.
type decision struct {
	action Action
	policy RetryPolicy
	rule   int // index of the matching rule, or -1 for the default
}

// newRecovery validates an inbox's recoverability settings; errors name the
// key under "inbox.".
func newRecovery(in *InboxConfig) (*recovery, error) {
	r := &recovery{retry: DefaultRetryPolicy(), maxBody: in.MaxBodyBytes}
	if in.Retry != nil {
		if err := in.Retry.Validate(); err != nil {
			return nil, fmt.Errorf("inbox.retry.%w", err)
		}
		r.retry = *in.Retry
	}
	if in.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("inbox.maxBodyBytes: %d is negative", in.MaxBodyBytes)
	}
	for i, rule := range in.Rules {
		c, err := compileRule(rule)
		if err != nil {
			return nil, fmt.Errorf("inbox.rules[%d].%w", i, err)
		}
		r.rules = append(r.rules, c)
	}
	r.defaults = map[string]Action{
		KindError: ActionRetry, KindPanic: ActionRetry,
		KindDecode: ActionRetry, KindNoHandler: ActionRetry,
		KindExpired: ActionDiscard, KindOversize: ActionPark,
		KindPermanent: ActionPark, KindPoison: ActionPark,
	}
	for _, d := range []struct {
		key  string
		kind string
		a    Action
	}{
		{"onDecodeError", KindDecode, in.OnDecodeError},
		{"onNoHandler", KindNoHandler, in.OnNoHandler},
		{"onExpired", KindExpired, in.OnExpired},
		{"onOversize", KindOversize, in.OnOversize},
	} {
		if d.a == "" {
			continue
		}
		if !validAction(d.a) {
			return nil, fmt.Errorf("inbox.%s: %q, want retry, discard or park", d.key, d.a)
		}
		r.defaults[d.kind] = d.a
	}
	return r, nil
}

// decide finds what to do with a failure of kind, with error text, of a
// message of type typ.
func (r *recovery) decide(typ, kind, text string) decision {
	d := decision{policy: r.retry, rule: -1}
	for i := range r.rules {
		if r.rules[i].matches(typ, kind, text) {
			d.action, d.rule = r.rules[i].Action, i
			if r.rules[i].Retry != nil {
				d.policy = *r.rules[i].Retry
			}
			break
		}
	}
	if d.rule < 0 {
		d.action = r.defaults[kind]
		if d.action == "" {
			d.action = ActionRetry
		}
	}
	if d.action == ActionRetry && unretriable[kind] {
		d.action = ActionPark
	}
	return d
}
