# jit-ssh: run `make help` for the targets.
# The two commands a newcomer needs: `make demo` and `make test`.

GO        ?= go
BIN       := bin
JIT       := $(BIN)/jit-ssh
VAULT     := $(BIN)/vault
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
GOLANGCI  := $(GO) tool -modfile=tools/go.mod golangci-lint
FUZZTIME  ?= 20s
# Packages with fuzz targets (parsers of outside input); `make fuzz` finds the targets in each.
FUZZPKGS  := ./ca ./ca/api ./cmd/jit-ssh/internal/config ./hostconfig ./approval

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## build bin/jit-ssh (static: no cgo, so no dynamic loader at every start)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(JIT) ./cmd/jit-ssh

.PHONY: setup
setup: ## install the system packages the tests need (OpenSSH, sqlite3, a C compiler) when missing
	@tools/setup.sh test

# The demo and the benchmarks need less than the tests; each runs its own
# set-up before anything else.
.PHONY: setup-demo setup-bench
setup-demo:
	@tools/setup.sh demo
setup-bench:
	@tools/setup.sh bench

.PHONY: vault
vault: ## the pinned Vault dev server in bin/: built once per machine (several minutes), then shared by every clone
	@GO=$(GO) tools/vault.sh $(VAULT)

.PHONY: test
test: setup build vault ## run every test (unit + end-to-end with real sshd, ssh-agent, Vault, SQLite) under -race
	JIT_SSH_BIN=$(CURDIR)/$(JIT) JIT_SSH_VAULT_BIN=$(CURDIR)/$(VAULT) $(GO) test -race -count=1 -timeout 30m ./...

.PHONY: test-short
test-short: ## unit tests only, about a minute: tests that run OpenSSH, Vault or the binary (testenv, vaulttest, test/e2e) and the stress tests skip under -short
	$(GO) test -race -short -count=1 ./...

.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME each (default 20s, about 5 min in all); crashers land in testdata/fuzz
	@set -e; for pkg in $(FUZZPKGS); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== fuzz $$pkg $$t for $(FUZZTIME)"; \
	    $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

.PHONY: demo
demo: setup-demo build ## run the whole JIT flow on the embedded default: server, sshd, request, approval, login, ssh, audit
	JIT=$(CURDIR)/$(JIT) bash test/demo/demo.sh

.PHONY: demo-vault
demo-vault: setup-demo build vault ## the same flow with the CA key in a real Vault (bin/vault dev server), AppRole login, a seal that fails closed
	JIT=$(CURDIR)/$(JIT) VAULT=$(CURDIR)/$(VAULT) bash test/demo/demo-vault.sh

.PHONY: demo-ci
demo-ci: setup-demo build ## a GitHub Actions deploy job logs in with its OIDC ID token (stand-in issuer), deploys over ssh, is audited and revoked
	$(GO) build -o $(BIN)/oidcstub ./test/oidcstub/cmd/oidcstub
	JIT=$(CURDIR)/$(JIT) OIDCSTUB=$(CURDIR)/$(BIN)/oidcstub bash test/demo/demo-ci.sh

.PHONY: bench
bench: setup-bench build vault ## benchmarks side by side with Vault and sqlite3 (about 5 min); table + bench/last.json
	$(GO) run ./test/bench -jit $(JIT) -vault $(VAULT) -out bench/last.json $(BENCHFLAGS)

.PHONY: bench-quick
bench-quick: setup-bench build vault ## a subset of the benchmarks in under a minute (smaller ledger, fewer runs)
	$(GO) run ./test/bench -quick -jit $(JIT) -vault $(VAULT) -out bench/last.json $(BENCHFLAGS)

.PHONY: lint
lint: ## gofmt, go vet and golangci-lint (config in .golangci.yml)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GOLANGCI) run ./...

.PHONY: fmt
fmt: ## format the code
	gofmt -w $$(git ls-files '*.go')

.PHONY: vuln
vuln: ## check dependencies for known vulnerabilities
	$(GO) tool -modfile=tools/go.mod govulncheck ./...

.PHONY: cover
cover: setup build vault ## test with a coverage report in coverage.html
	JIT_SSH_BIN=$(CURDIR)/$(JIT) JIT_SSH_VAULT_BIN=$(CURDIR)/$(VAULT) $(GO) test -count=1 -coverprofile=coverage.out ./...
	$(GO) tool cover -html=coverage.out -o coverage.html

.PHONY: tidy
tidy: ## tidy go.mod files
	$(GO) mod tidy
	cd tools && $(GO) mod tidy

.PHONY: clean
clean: ## remove build outputs (keeps bin/vault; use clean-all for that too)
	rm -f $(JIT) coverage.out coverage.html

.PHONY: clean-all
clean-all: clean ## remove bin/ entirely
	rm -rf $(BIN)
