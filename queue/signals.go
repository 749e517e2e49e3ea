package queue

import (
	"context"
	"sync"
)

// notify wakes receivers of queue in this process and, where the dialect
// has a channel, in every process listening on it.
func (s *sqlStore) notify(ctx context.Context, queue string) {
	s.signals.fire(queue)
	if s.channel != "" {
		s.ops.Add(1)
		if _, err := s.db.ExecContext(ctx, s.q.notify, s.channel, queue); err != nil {
			s.failed(ctx, err)
			s.log.Warn("queue: notify failed; receivers will poll", "queue", queue, "err", err)
		}
	}
}

// wake returns a channel closed at the next enqueue signal for queue.
// Where the dialect has a channel it starts listening on first use.
func (s *sqlStore) wake(queue string) <-chan struct{} {
	if s.channel != "" {
		s.startListener()
	}
	return s.signals.wait(queue)
}

func (s *sqlStore) startListener() {
	s.listenMu.Lock()
	defer s.listenMu.Unlock()
	if s.listener != nil {
		return
	}
	s.listener = s.d.Listen(s.channel, s.opts.Name, RedactDSN(s.dsn), s.log, s.signals.fire, s.signals.fireAll)
}

// signals is an in-process broadcast per queue name.
type signals struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

func newSignals() *signals { return &signals{m: map[string]chan struct{}{}} }

func (g *signals) wait(queue string) <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	ch, ok := g.m[queue]
	if !ok {
		ch = make(chan struct{})
		g.m[queue] = ch
	}
	return ch
}

func (g *signals) fire(queue string) {
	g.mu.Lock()
	if ch, ok := g.m[queue]; ok {
		close(ch)
		delete(g.m, queue)
	}
	g.mu.Unlock()
}

func (g *signals) fireAll() {
	g.mu.Lock()
	for q, ch := range g.m {
		close(ch)
		delete(g.m, q)
	}
	g.mu.Unlock()
}
