package config

import (
	"strings"
	"testing"

	"github.com/jit-ssh/jit-ssh/approval"
)

// withWorkloads is the SPEC example with a workload_identity block wi
// (none if "") and a group web-prod whose body is group.
func withWorkloads(t *testing.T, wi, group string) []byte {
	t.Helper()
	doc := strings.Replace(string(readFixture(t, "spec-example.yaml")), "host_groups:\n", "host_groups:\n  web-prod:\n"+group, 1)
	return []byte(doc + wi)
}

const webProd = `    principals: [deploy]
    approvals_required: 0
    max_duration: 30m
    cert_ttl: 5m
    workloads:
      - {repository: acme/web, ref: refs/heads/main, environment: production}
`

func TestWorkloadsConfig(t *testing.T) {
	c, comp, err := Parse(withWorkloads(t, "workload_identity:\n  github_actions: {}\n", webProd))
	if err != nil {
		t.Fatal(err)
	}
	g := c.WorkloadIdentity.GitHubActions
	if g.Issuer != "https://token.actions.githubusercontent.com" || g.Audience != "jit-ssh" {
		t.Errorf("defaults: issuer %q audience %q", g.Issuer, g.Audience)
	}
	var pol *approval.Policy
	for _, p := range comp.Policies {
		if p.Group == "web-prod" {
			pol = p
		}
	}
	want := approval.WorkloadRule{Repository: "acme/web", Ref: "refs/heads/main", Environment: "production"}
	if pol == nil || len(pol.Workloads) != 1 || pol.Workloads[0] != want || len(pol.Requesters) != 0 {
		t.Errorf("web-prod policy = %+v, want only the workload %+v", pol, want)
	}
}

func TestWorkloadsConfigProblems(t *testing.T) {
	for _, tc := range []struct {
		name, wi, group, path, want string
	}{
		{"unknown key in workload_identity", "workload_identity:\n  github_actions: {issuer: https://x.example.com, audiences: [a]}\n", webProd,
			"workload_identity.github_actions.audiences", "unknown"},
		{"unknown provider", "workload_identity:\n  gitlab: {}\n", webProd, "workload_identity.gitlab", "unknown"},
		{"plain http issuer", "workload_identity:\n  github_actions: {issuer: 'http://issuer.example.com'}\n", webProd,
			"workload_identity.github_actions.issuer", "must be https"},
		{"issuer with a query", "workload_identity:\n  github_actions: {issuer: 'https://issuer.example.com/?a=b'}\n", webProd,
			"workload_identity.github_actions.issuer", "plain URL"},
		{"workloads without workload_identity", "", webProd, "host_groups.web-prod.workloads", "not configured"},
		{"unknown key in a workload", "workload_identity:\n  github_actions: {}\n",
			strings.Replace(webProd, "environment: production}", "environment: production, branch: main}", 1),
			"host_groups.web-prod.workloads[0].branch", "unknown"},
		{"repository not owner/name", "workload_identity:\n  github_actions: {}\n",
			strings.Replace(webProd, "repository: acme/web", "repository: 'acme/web:run=1'", 1),
			"host_groups.web-prod.workloads[0].repository", "not owner/name"},
		{"repository alone", "workload_identity:\n  github_actions: {}\n",
			strings.Replace(webProd, ", ref: refs/heads/main, environment: production", "", 1),
			"host_groups.web-prod.workloads[0]", "name a ref, an environment or both"},
		{"short ref", "workload_identity:\n  github_actions: {}\n", strings.Replace(webProd, "ref: refs/heads/main", "ref: main", 1),
			"host_groups.web-prod.workloads[0].ref", "full ref"},
		{"no requesters and no workloads", "", strings.Replace(webProd, "    workloads:\n      - {repository: acme/web, ref: refs/heads/main, environment: production}\n", "", 1),
			"host_groups.web-prod.requesters", "at least one team"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse(withWorkloads(t, tc.wi, tc.group))
			ps := problems(t, err)
			if p := problemAt(ps, tc.path); !strings.Contains(p, tc.want) {
				t.Errorf("problem at %s = %q, want it to say %q; all: %q", tc.path, p, tc.want, ps)
			}
		})
	}
}
