package e2e

import (
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jit-ssh/jit-ssh/test/oidcstub"
	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// TestWorkloadTokensNeverLeak: after a job's login, a refused job, a
// replayed and a malformed token, neither the runner's request token nor
// any ID token (found by the header every token of the issuer's key
// starts with) is in the server's log, any file of its data directory
// (the ledger and its WAL), or the jobs' output.
func TestWorkloadTokensNeverLeak(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and runs jobs")
	}
	stub := oidcstub.New(t)
	dir := testenv.TempDir(t)
	data := filepath.Join(dir, "data")
	cfg := filepath.Join(dir, "config.yaml")
	yaml := strings.ReplaceAll(strings.ReplaceAll(workloadConfig, "%ISSUER%", stub.URL), "%DATA%", data)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, "--config", cfg)
	sock := testenv.StartAgent(t)
	sample := stub.Token(nil)
	header := strings.Split(sample, ".")[0]
	var outputs []string

	r := runResult(t, job(t, srv, stub, sock, testenv.TempDir(t), nil, "login", "web-prod"))
	if r.Code != 0 {
		t.Fatalf("job login: exit %d\n%s", r.Code, r.Stderr)
	}
	outputs = append(outputs, r.Stdout, r.Stderr)
	stub.SetJob(map[string]any{"environment": "staging"}) // refused: recorded in the ledger
	r = runResult(t, job(t, srv, stub, sock, testenv.TempDir(t), nil, "login", "web-prod", "--timeout", "5s"))
	stub.SetJob(nil)
	if r.Code != 3 {
		t.Errorf("the staging job: exit %d, want 3\n%s", r.Code, r.Stderr)
	}
	outputs = append(outputs, r.Stdout, r.Stderr)
	const create = `{"host_group":"web-prod","duration":"10m","reason":"deploy"}`
	if code, body := rawCall(t, srv, "POST", "/v1/requests", sample, create); code != http.StatusCreated && code != http.StatusOK {
		t.Errorf("first use of a token: %d %s", code, body)
	}
	if code, body := rawCall(t, srv, "POST", "/v1/requests", sample, create); code != http.StatusUnauthorized {
		t.Errorf("replayed token: %d %s, want 401", code, body)
	} else {
		outputs = append(outputs, body)
	}
	_, body := rawCall(t, srv, "POST", "/v1/requests", header+".e30.c2ln", create)
	outputs = append(outputs, body)

	srv.Stop(t)
	places := map[string]string{"server log": srv.Log()}
	for i, o := range outputs {
		places["job output or API answer "+string(rune('a'+i))] = o
	}
	err := filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path) //nolint:gosec // the test's own directory
		if err != nil {
			return err
		}
		places[path] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(places) < 3 {
		t.Fatalf("found only %d places to look in; the ledger is missing", len(places))
	}
	for where, text := range places {
		for name, secret := range map[string]string{"the runner's request token": stub.ActionsRequestToken, "an ID token": header} {
			if strings.Contains(text, secret) {
				t.Errorf("%s holds %s", where, name)
			}
		}
	}
}
