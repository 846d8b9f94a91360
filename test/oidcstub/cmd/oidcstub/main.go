// Command oidcstub runs the stand-in GitHub Actions OIDC issuer
// (test/oidcstub) on its own, for the CI demo (make demo-ci): it serves
// discovery, the JWKS and a runner's token endpoint until it is stopped,
// and writes the job's environment (ACTIONS_ID_TOKEN_REQUEST_URL and
// _TOKEN) and the issuer's URL, as shell assignments, to the -env file.
// The job's claims are the stub's defaults (acme/web, refs/heads/main,
// environment production, run 4242) unless the flags say otherwise.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/jit-ssh/jit-ssh/test/oidcstub"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback)")
	envFile := flag.String("env", "", "write ISSUER=, ACTIONS_ID_TOKEN_REQUEST_URL= and ACTIONS_ID_TOKEN_REQUEST_TOKEN= here (mode 0600)")
	repo := flag.String("repository", "", "the job's repository claim (default acme/web)")
	ref := flag.String("ref", "", "the job's ref claim (default refs/heads/main)")
	environment := flag.String("environment", "", "the job's environment claim (default production)")
	run := flag.String("run-id", "", "the job's run_id claim (default 4242)")
	flag.Parse()
	if *envFile == "" {
		fmt.Fprintln(os.Stderr, "oidcstub: -env FILE is required")
		os.Exit(2)
	}
	s, err := oidcstub.Start(*addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer s.Close()
	job := map[string]any{}
	for k, v := range map[string]string{"repository": *repo, "ref": *ref, "environment": *environment, "run_id": *run} {
		if v != "" {
			job[k] = v
		}
	}
	if *repo != "" || *environment != "" {
		r, e := *repo, *environment
		if r == "" {
			r = "acme/web"
		}
		if e == "" {
			e = "production"
		}
		job["sub"] = "repo:" + r + ":environment:" + e
	}
	s.SetJob(job)
	env := fmt.Sprintf("ISSUER=%s\nACTIONS_ID_TOKEN_REQUEST_URL='%s'\nACTIONS_ID_TOKEN_REQUEST_TOKEN=%s\n", s.URL, s.ActionsRequestURL(), s.ActionsRequestToken)
	if err := os.WriteFile(*envFile, []byte(env), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "oidcstub:", err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
}
