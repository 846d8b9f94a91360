package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"strconv"
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
