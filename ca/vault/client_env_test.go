package vault

import "testing"

// The JIT_SSH_VAULT_* variables come only from the injected Getenv, and
// only for the fields the configuration left empty.
func TestAppRoleWithEnv(t *testing.T) {
	env := map[string]string{
		EnvRoleID: "env-role", EnvRoleIDFile: "/env/role",
		EnvSecretID: "env-secret", EnvSecretIDFile: "/env/secret",
	}
	getenv := func(k string) string { return env[k] }
	tests := []struct {
		name   string
		in     AppRole
		getenv func(string) string
		want   AppRole
	}{
		{"no environment", AppRole{}, nil, AppRole{Mount: "approle"}},
		{"from the environment", AppRole{}, getenv,
			AppRole{Mount: "approle", RoleID: "env-role", RoleIDFile: "/env/role", SecretID: "env-secret", SecretIDFile: "/env/secret"}},
		{"configured files win", AppRole{Mount: "/auth-x/", RoleIDFile: "/cfg/role", SecretIDFile: "/cfg/secret"}, getenv,
			AppRole{Mount: "auth-x", RoleIDFile: "/cfg/role", SecretIDFile: "/cfg/secret"}},
		{"configured role, secret from the environment", AppRole{RoleID: "cfg-role"}, getenv,
			AppRole{Mount: "approle", RoleID: "cfg-role", SecretID: "env-secret", SecretIDFile: "/env/secret"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.withEnv(tt.getenv); got != tt.want {
				t.Errorf("withEnv = %+v, want %+v", got, tt.want)
			}
		})
	}
}
