package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/jit-ssh/jit-ssh/ca"
)

// RehashChain recomputes every event row's link and hash from the first row
// on, as an attacker who edited a row and knows the (public) hash scheme
// would, so that the chain alone verifies again.
func RehashChain(ctx context.Context, raw *sql.DB) error {
	rows, err := raw.QueryContext(ctx, `SELECT id, at, actor, type, request_id, serial, data FROM events ORDER BY id`)
	if err != nil {
		return err
	}
	var all []canonicalEvent
	for rows.Next() {
		var ce canonicalEvent
		var serial int64
		var data string
		if err := rows.Scan(&ce.ID, &ce.At, &ce.Actor, &ce.Type, &ce.RequestID, &serial, &data); err != nil {
			rows.Close()
			return err
		}
		ce.Serial = strconv.FormatUint(uint64(serial), 10) //nolint:gosec // bit-for-bit
		ce.Data = json.RawMessage(data)
		all = append(all, ce)
	}
	rows.Close()
	prev := ""
	for _, ce := range all {
		ce.PrevHash = prev
		h := eventHash(ce)
		if _, err := raw.ExecContext(ctx, `UPDATE events SET prev_hash = ?, hash = ? WHERE id = ?`, prev, h, ce.ID); err != nil {
			return err
		}
		prev = h
	}
	return nil
}

// SkipTailCheck makes Checkpoint sign without verifying the tail first, as
// an attacker's own copy of the code would.
func (d *DB) SkipTailCheck() { d.tailVerified.Store(true) }

// ForgeEvent appends ev after the chain's head of the ledger behind raw,
// with the right link and hash but no MAC, as someone who knows the
// (public) hash scheme but not the checkpoint key would. With bind set, ev
// also carries the digests of request ev.RequestID as raw now holds it, so
// that the row bindings check out too. It returns the new row's id.
func ForgeEvent(ctx context.Context, raw *sql.DB, ev ca.Event, bind bool) (int64, error) {
	if bind {
		r, err := readRequestTx(ctx, raw, ev.RequestID)
		if err != nil {
			return 0, err
		}
		ev = withData(ev, DataRequestSHA256, requestDigest(r), DataReviewsSHA256, reviewsDigest(r))
	}
	data, err := eventData(ev)
	if err != nil {
		return 0, err
	}
	ce := canonicalEvent{At: ev.Time.UnixNano(), Actor: ev.Actor, Type: ev.Type, RequestID: ev.RequestID,
		Serial: strconv.FormatUint(ev.Serial, 10), Data: data}
	err = raw.QueryRowContext(ctx, `SELECT id + 1, hash FROM events ORDER BY id DESC LIMIT 1`).Scan(&ce.ID, &ce.PrevHash)
	if errors.Is(err, sql.ErrNoRows) {
		ce.ID, err = 1, nil
	}
	if err != nil {
		return 0, err
	}
	_, err = raw.ExecContext(ctx, `INSERT INTO events (id, at, actor, type, request_id, serial, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ce.ID, ce.At, ce.Actor, ce.Type, ce.RequestID, int64(ev.Serial), string(data), ce.PrevHash, eventHash(ce)) //nolint:gosec // bit-for-bit
	return ce.ID, err
}
