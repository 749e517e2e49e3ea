package bus

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/ferrybus/ferry/queue"
)

// settleTimeout bounds an ack, release or move after handling.
const settleTimeout = 30 * time.Second

// A settler acks the messages whose handlers succeeded. An endpoint picks
// one at Start from its inbox's configuration (newSettler), so handling
// does not branch on it per message.
type settler interface {
	// claim is called inside a transactional handler's transaction, before
	// its sends go out: it records msg handled, and reports false when
	// another copy recorded it first (msg is then a duplicate).
	claim(ctx context.Context, msg *Message) (bool, error)
	// handled acks d once its plain handler succeeded and its sends went out.
	handled(d queue.Delivery, env *Envelope)
}

// newSettler returns the settler of the endpoint's inbox.
func (e *Endpoint) newSettler() settler {
	if e.cfg.Inbox.Idempotent {
		return claimedAck{e}
	}
	return asyncAck{e}
}

// asyncAck settles for an inbox that does not record handled ids: the ack
// goes to the acker, and the thread goes on to its next message while the
// ack waits for the acker's next statement, shared with other threads' acks.
type asyncAck struct{ e *Endpoint }

func (asyncAck) claim(context.Context, *Message) (bool, error) { return true, nil }

func (s asyncAck) handled(d queue.Delivery, _ *Envelope) {
	e := s.e
	e.settleAsync(d, func(err error) {
		if err != nil {
			e.deliveryLog(d).Warn("ack failed; the message will be delivered again", "err", err)
			return
		}
		e.count(EventHandled, d, "", "")
	})
}

// claimedAck settles for an idempotent inbox: the handled record and the
// ack commit together.
type claimedAck struct{ e *Endpoint }

func (s claimedAck) claim(ctx context.Context, msg *Message) (bool, error) {
	return s.e.inbox.Store().ClaimHandledTx(ctx, msg.tx, s.e.cfg.Name, msg.ID)
}

// handled records env handled and acks d in one transaction. A copy
// handled at the same time may have recorded it first: this one is then a
// duplicate whose (non-transactional) handler ran all the same.
func (s claimedAck) handled(d queue.Delivery, env *Envelope) {
	e := s.e
	claimed := false
	err := e.settle(d, func(sctx context.Context) error {
		tx, err := e.inbox.Store().DB().BeginTx(sctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if claimed, err = e.inbox.Store().ClaimHandledTx(sctx, tx, e.cfg.Name, env.ID); err != nil {
			return err
		}
		if err := e.inbox.AckTx(sctx, tx, d); err != nil {
			return err
		}
		return tx.Commit()
	})
	if err != nil {
		e.deliveryLog(d).Warn("ack failed; the message will be delivered again", "err", err)
		return
	}
	if !claimed {
		e.count(EventDuplicate, d, "", "")
		e.deliveryLog(d).Warn("another copy of the message was handled at the same time; a non-transactional handler ran for both")
		return
	}
	e.count(EventHandled, d, "", "")
}

// errDuplicate ends a transactional handler's commit when another copy of
// the message has recorded it handled first.
var errDuplicate = errors.New("already handled by another copy")

// settleTx commits a transactional handler's transaction with the ack of d.
func (e *Endpoint) settleTx(d queue.Delivery, msg *Message) {
	err := e.settle(d, func(sctx context.Context) error {
		if err := e.inbox.AckTx(sctx, msg.tx, d); err != nil {
			msg.tx.Rollback()
			return err
		}
		return msg.tx.Commit()
	})
	if err != nil {
		e.log.Warn("transactional handler: commit failed; the message will be delivered again", "message", d.MessageID, "err", err)
		return
	}
	e.count(EventHandled, d, "", "")
}

// ackDuplicate acks a copy of a message this endpoint has already handled.
func (e *Endpoint) ackDuplicate(d queue.Delivery, why string) {
	log := e.deliveryLog(d)
	if err := e.settle(d, func(ctx context.Context) error { return e.ack(ctx, d) }); err != nil {
		log.Warn("ack of duplicate failed", "err", err)
		return
	}
	e.count(EventDuplicate, d, "", "")
	log.Info(why)
}

// settle runs the final operation on a message (ack, release, move) unless
// Stop has already given it back.
func (e *Endpoint) settle(d queue.Delivery, op func(ctx context.Context) error) error {
	v, ok := e.inflight.Load(d.ID)
	if !ok {
		return nil
	}
	f := v.(*inflight)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.released {
		return nil
	}
	f.released = true
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	return op(ctx)
}

// settleAsync acks d through the acker without waiting, unless Stop has
// already given it back; done gets the outcome.
func (e *Endpoint) settleAsync(d queue.Delivery, done func(error)) {
	v, ok := e.inflight.Load(d.ID)
	if !ok {
		return
	}
	f := v.(*inflight)
	f.mu.Lock()
	released := f.released
	f.released = true
	f.mu.Unlock()
	if released {
		return
	}
	if e.handoff != 0 {
		// Until the ack commits, the row is still leased to the handoff
		// token and no longer in inflight: held must still list it, or
		// ReceiveGiven would return it again.
		e.acking.Store(d.ID, struct{}{})
		inner := done
		done = func(err error) {
			e.acking.Delete(d.ID)
			inner(err)
		}
	}
	e.acks.ackAsync(d, done)
}

// deliveryLog is the endpoint's logger with d's identity. It is built only
// when something is logged: most messages log nothing.
func (e *Endpoint) deliveryLog(d queue.Delivery) *slog.Logger {
	return e.log.With("message", d.MessageID, "type", d.Type, "attempt", d.Attempts)
}
