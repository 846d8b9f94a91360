package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// chain appends events inside a write transaction.
type chain struct {
	head   string
	next   int64 // id of the next event row
	now    func() time.Time
	stmts  *writeStmts // nil: unprepared SQL
	macKey []byte      // nil: rows carry no MAC (no checkpoint signer)
	// checkedThrough is the last row VerifyTail checked (see macKeyFor).
	checkedThrough int64
}

// canonicalEvent is the encoding an event's hash covers (store's, shared
// by every backend).
type canonicalEvent = store.CanonicalEvent

// EventRowHash returns the hash an event row must carry; it is
// store.EventRowHash, kept here for the tools that name it.
func EventRowHash(id, at int64, actor, typ, requestID string, serial uint64, data, prevHash string) string {
	return store.EventRowHash(id, at, actor, typ, requestID, serial, data, prevHash)
}

// eventHash returns the hex SHA-256 of an event's canonical encoding.
func eventHash(e canonicalEvent) string { return e.Hash() }

// append writes ev as the next row of the chain.
func (c *chain) append(ctx context.Context, tx *sql.Tx, ev ca.Event) error {
	data, err := eventData(ev)
	if err != nil {
		return err
	}
	return c.appendEncoded(ctx, tx, ev, data)
}

// eventData encodes ev's data as stored ("{}" when it has none).
func eventData(ev ca.Event) ([]byte, error) { return store.EventData(ev) }

// appendEncoded is append with ev's data already encoded (by eventData,
// outside the writer's lock).
func (c *chain) appendEncoded(ctx context.Context, tx *sql.Tx, ev ca.Event, data []byte) error {
	if ev.Time.IsZero() {
		ev.Time = c.now()
	}
	id := c.next
	ce := canonicalEvent{
		ID: id, At: ev.Time.UnixNano(), Actor: ev.Actor, Type: ev.Type,
		RequestID: ev.RequestID, Serial: strconv.FormatUint(ev.Serial, 10),
		Data: data, PrevHash: c.head,
	}
	h := eventHash(ce)
	var mac any // NULL without a key
	if c.macKey != nil {
		mac = store.EventMAC(c.macKey, id, h)
	}
	_, err := c.stmts.exec(ctx, tx, sqlInsertEvent,
		id, ce.At, ce.Actor, ce.Type, ce.RequestID, int64(ev.Serial), string(data), ce.PrevHash, h, mac) //nolint:gosec // serials are stored bit-for-bit
	if err != nil {
		return err
	}
	c.head, c.next = h, id+1
	return nil
}

// RecordEvent appends one event to the log (for events that change no other
// table: refusals, configuration loaded).
func (d *DB) RecordEvent(ctx context.Context, ev ca.Event) error {
	return d.write(ctx, "recording event", func(tx *sql.Tx, c *chain) error {
		return c.append(ctx, tx, ev)
	})
}

// Verify walks the event log in order and checks every row's hash and link,
// then every signed checkpoint (in the ledger and the sidecar file) against
// the chain: a checkpoint past the last row means the tail was deleted, one
// whose row hash differs means the chain was rewritten. Last, every
// request, review and certificate row is checked against the newest event
// that binds it (bind.go). It returns a *ChainError naming the first bad
// row.
func (d *DB) Verify(ctx context.Context) (ca.VerifyResult, error) {
	// One read transaction: the chain and the tables it binds are checked
	// in the same snapshot, whatever the server writes meanwhile.
	q, err := d.r.BeginTx(ctx, nil)
	if err != nil {
		return ca.VerifyResult{}, classify("verify", err)
	}
	defer func() { _ = q.Rollback() }()
	rows, err := q.QueryContext(ctx, `SELECT id, at, actor, type, request_id, serial, data, prev_hash, hash FROM events ORDER BY id`)
	if err != nil {
		return ca.VerifyResult{}, classify("verify", err)
	}
	defer rows.Close()
	var res ca.VerifyResult
	b := store.NewBindings()
	prev, lastID := "", int64(0)
	for rows.Next() {
		var ce canonicalEvent
		var serial int64
		var data, hash string
		if err := rows.Scan(&ce.ID, &ce.At, &ce.Actor, &ce.Type, &ce.RequestID, &serial, &data, &ce.PrevHash, &hash); err != nil {
			return res, classify("verify", err)
		}
		ce.Serial = strconv.FormatUint(uint64(serial), 10) //nolint:gosec // bit-for-bit
		ce.Data = json.RawMessage(data)
		switch {
		case ce.ID != lastID+1:
			return res, &store.ChainError{Row: ce.ID, Reason: fmt.Sprintf("expected row %d next: a row was deleted or inserted", lastID+1)}
		case ce.PrevHash != prev:
			return res, &store.ChainError{Row: ce.ID, Reason: "link to the previous row does not match: a row before it was changed, removed or reordered"}
		case !json.Valid(ce.Data):
			return res, &store.ChainError{Row: ce.ID, Reason: "data is not valid JSON"}
		case eventHash(ce) != hash:
			return res, &store.ChainError{Row: ce.ID, Reason: "row content does not match its hash: the row was edited"}
		}
		if err := b.Add(&ce, uint64(serial)); err != nil {
			return res, err
		}
		prev, lastID = hash, ce.ID
		res.Rows++
	}
	if err := rows.Err(); err != nil {
		return res, classify("verify", err)
	}
	rows.Close()
	res.Head = prev
	if err := d.verifyCheckpoints(ctx, q, lastID, &res); err != nil {
		return res, err
	}
	return res, d.verifyRows(ctx, q, b, &res)
}
