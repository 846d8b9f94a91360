package config

import "path/filepath"

// The files of the data directory.
const (
	// CAKeyFile is the file CA key when signer.file.key_file names none.
	CAKeyFile = "ca_ed25519"
	// CheckpointKeyFile is the dedicated checkpoint key, used when the
	// CA key lives in Vault: Vault's SSH engine signs certificates only,
	// not arbitrary data.
	CheckpointKeyFile = "checkpoint_ed25519"
	// LedgerFile is the ledger (SQLite).
	LedgerFile = "ledger.db"
)

// CAKeyPath is the default file CA key of a data directory.
func CAKeyPath(dataDir string) string { return filepath.Join(dataDir, CAKeyFile) }

// LedgerPath is the ledger of the config's data directory.
func (c *Server) LedgerPath() string { return filepath.Join(c.DataDir, LedgerFile) }

// CheckpointKeyPath is the dedicated checkpoint key of the config's data
// directory.
func (c *Server) CheckpointKeyPath() string { return filepath.Join(c.DataDir, CheckpointKeyFile) }
