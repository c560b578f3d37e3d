package profile

import (
	"slices"
	"testing"
)

func TestEnvWithoutSecrets(t *testing.T) {
	env := []string{"HOME=/home/a", EnvPassphrase + "=pw", "PATH=/bin", EnvNewPassphrase + "=new",
		EnvInvite + "=code", EnvPassphrase + "X=kept", "PFSCHAT_HOME=/p"}
	got := EnvWithoutSecrets(env)
	want := []string{"HOME=/home/a", "PATH=/bin", EnvPassphrase + "X=kept", "PFSCHAT_HOME=/p"}
	if !slices.Equal(got, want) {
		t.Errorf("EnvWithoutSecrets = %q, want %q", got, want)
	}
}
