package queue

import "context"

// queryMoved runs a move that returns its rows (message_id, headers) on
// the consume pool, serialised where the dialect needs it, and reads them.
// Headers that cannot be decoded come back nil.
func (s *sqlStore) queryMoved(ctx context.Context, query string, args ...any) ([]Moved, error) {
	defer s.lockWrites()()
	s.ops.Add(1)
	rows, err := s.consumeQuery(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var moved []Moved
	for rows.Next() {
		var m Moved
		var headers string
		if err := rows.Scan(&m.MessageID, &headers); err != nil {
			return nil, err
		}
		m.Headers, _ = decodeHeaders(headers)
		moved = append(moved, m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	s.wrote(int64(len(moved)))
	return moved, nil
}

// woke wakes dst's receivers after a move of some rows: in this process,
// and in others where the moving statement did not (notified false).
func (s *sqlStore) woke(ctx context.Context, dst string, notified bool) {
	if notified {
		s.signals.fire(dst)
		return
	}
	s.notify(ctx, dst)
}
