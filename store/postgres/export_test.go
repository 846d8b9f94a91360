package postgres

// SetBeforeCommit sets the hook run before each certificate batch's commit
// with its size.
func (d *DB) SetBeforeCommit(h func(n int)) { d.gc.beforeCommit = h }

// QueuedCertificates is how many certificates wait for the next batch.
func (d *DB) QueuedCertificates() int { return d.gc.Queued() }

// CertificateBatches is how many certificate batches ran.
func (d *DB) CertificateBatches() int { return d.gc.Batches() }
