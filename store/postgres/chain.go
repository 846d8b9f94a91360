package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// chain appends events inside a write transaction that holds the chain's
// lock (lockChain).
type chain struct {
	head   string
	nextID int64 // id of the next event row
	now    func() time.Time
	macKey []byte // nil: rows carry no MAC
	// checkedThrough is the last row VerifyTail checked (store.MACKeyFor).
	checkedThrough int64
}

const sqlInsertEvent = `INSERT INTO events (id, at, actor, type, request_id, serial, data, prev_hash, hash, mac) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`

// append writes ev as the next row of the chain.
func (c *chain) append(ctx context.Context, tx pgx.Tx, ev ca.Event) error {
	data, err := store.EventData(ev)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, sqlInsertEvent, c.next(ev, data)...)
	return err
}

// next makes ev (with data, its encoded data) the chain's next row and
// returns the arguments of its sqlInsertEvent. The chain's head moves on:
// the caller inserts the row in the transaction, or abandons the chain.
func (c *chain) next(ev ca.Event, data []byte) []any {
	if ev.Time.IsZero() {
		ev.Time = c.now()
	}
	id := c.nextID
	ce := store.CanonicalEvent{
		ID: id, At: ev.Time.UnixNano(), Actor: ev.Actor, Type: ev.Type,
		RequestID: ev.RequestID, Serial: strconv.FormatUint(ev.Serial, 10),
		Data: data, PrevHash: c.head,
	}
	h := ce.Hash()
	var mac *string // NULL without a key
	if c.macKey != nil {
		m := store.EventMAC(c.macKey, id, h)
		mac = &m
	}
	c.head, c.nextID = h, id+1
	return []any{id, ce.At, ce.Actor, ce.Type, ce.RequestID, int64(ev.Serial), string(data), ce.PrevHash, h, mac} //nolint:gosec // serials are stored bit-for-bit
}

// RecordEvent appends one event to the log (for events that change no other
// table: refusals, configuration loaded).
func (d *DB) RecordEvent(ctx context.Context, ev ca.Event) error {
	return d.write(ctx, "recording event", func(tx pgx.Tx, c *chain) error {
		return c.append(ctx, tx, ev)
	})
}

// storedEvent is an event row as read for checking.
type storedEvent struct {
	ce     store.CanonicalEvent
	serial int64
	data   string
	hash   string
	mac    *string
}

const storedEventColumns = `id, at, actor, type, request_id, serial, data, prev_hash, hash, mac`

func (e *storedEvent) dest() []any {
	return []any{&e.ce.ID, &e.ce.At, &e.ce.Actor, &e.ce.Type, &e.ce.RequestID, &e.serial, &e.data, &e.ce.PrevHash, &e.hash, &e.mac}
}

// check returns why the row is not intact ("" when it is): its hash must
// cover its content and, when macKey is set and the row carries a MAC, the
// MAC must be this server's.
func (e *storedEvent) check(macKey []byte) string {
	e.ce.Serial = strconv.FormatUint(uint64(e.serial), 10) //nolint:gosec // bit-for-bit
	e.ce.Data = json.RawMessage(e.data)
	mac := ""
	if e.mac != nil {
		mac = *e.mac
	}
	return store.CheckEventRow(&e.ce, e.hash, mac, macKey)
}

// Verify walks the event log in order and checks every row's hash and link,
// then every signed checkpoint against the chain, then every request,
// review and certificate row against the newest event that binds it. It
// returns a *store.ChainError naming the first bad row. It reads one
// snapshot.
func (d *DB) Verify(ctx context.Context) (ca.VerifyResult, error) {
	var res ca.VerifyResult
	err := d.readTx(ctx, func(q pgx.Tx) error {
		rows, err := q.Query(ctx, `SELECT `+storedEventColumns+` FROM events ORDER BY id`)
		if err != nil {
			return classify("verify", err)
		}
		defer rows.Close()
		b := store.NewBindings()
		prev, lastID := "", int64(0)
		for rows.Next() {
			var ev storedEvent
			if err := rows.Scan(ev.dest()...); err != nil {
				return classify("verify", err)
			}
			ce := &ev.ce
			ce.Serial = strconv.FormatUint(uint64(ev.serial), 10) //nolint:gosec // bit-for-bit
			ce.Data = json.RawMessage(ev.data)
			switch {
			case ce.ID != lastID+1:
				return &store.ChainError{Row: ce.ID, Reason: fmt.Sprintf("expected row %d next: a row was deleted or inserted", lastID+1)}
			case ce.PrevHash != prev:
				return &store.ChainError{Row: ce.ID, Reason: "link to the previous row does not match: a row before it was changed, removed or reordered"}
			case !json.Valid(ce.Data):
				return &store.ChainError{Row: ce.ID, Reason: "data is not valid JSON"}
			case ce.Hash() != ev.hash:
				return &store.ChainError{Row: ce.ID, Reason: "row content does not match its hash: the row was edited"}
			}
			if err := b.Add(ce, uint64(ev.serial)); err != nil { //nolint:gosec // bit-for-bit
				return err
			}
			prev, lastID = ev.hash, ce.ID
			res.Rows++
		}
		if err := rows.Err(); err != nil {
			return classify("verify", err)
		}
		rows.Close()
		res.Head = prev
		if err := d.verifyCheckpoints(ctx, q, lastID, &res); err != nil {
			return err
		}
		return verifyRows(ctx, q, b, &res)
	})
	if err != nil {
		var ce *store.ChainError
		if errors.As(err, &ce) {
			return res, err
		}
		return res, classify("verify", err)
	}
	return res, nil
}
