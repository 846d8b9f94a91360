package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
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

// canonicalEvent is the encoding an event's hash covers. Field order is
// fixed by the struct; data is the exact stored JSON text.
type canonicalEvent struct {
	ID        int64           `json:"id"`
	At        int64           `json:"at"`
	Actor     string          `json:"actor"`
	Type      string          `json:"type"`
	RequestID string          `json:"request_id"`
	Serial    string          `json:"serial"`
	Data      json.RawMessage `json:"data"`
	PrevHash  string          `json:"prev_hash"`
}

// EventRowHash returns the hash an event row must carry: the hex SHA-256
// of its canonical encoding, which covers the previous row's hash. It is
// the chain's definition, for tools that build ledgers outside the server
// (the benchmarks' generated ledgers) or check them.
func EventRowHash(id, at int64, actor, typ, requestID string, serial uint64, data, prevHash string) string {
	return eventHash(canonicalEvent{ID: id, At: at, Actor: actor, Type: typ, RequestID: requestID,
		Serial: strconv.FormatUint(serial, 10), Data: json.RawMessage(data), PrevHash: prevHash})
}

// eventHash returns the hex SHA-256 of an event's canonical encoding.
func eventHash(e canonicalEvent) string {
	b, err := json.Marshal(e)
	if err != nil {
		// Only RawMessage can fail, and it holds JSON we produced.
		panic(fmt.Sprintf("store: encoding event: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// append writes ev as the next row of the chain.
func (c *chain) append(ctx context.Context, tx *sql.Tx, ev ca.Event) error {
	data, err := eventData(ev)
	if err != nil {
		return err
	}
	return c.appendEncoded(ctx, tx, ev, data)
}

// eventData encodes ev's data as stored ("{}" when it has none).
func eventData(ev ca.Event) ([]byte, error) {
	if len(ev.Data) == 0 {
		return []byte("{}"), nil
	}
	data, err := json.Marshal(ev.Data)
	if err != nil {
		return nil, fmt.Errorf("store: encoding event data: %w", err)
	}
	return data, nil
}

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
		mac = eventMAC(c.macKey, id, h)
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
	b := newBindings()
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
		if err := b.add(&ce, serial); err != nil {
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
