package e2etest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// functions are the Lambda functions under cmd/.
var functions = []string{"cloudtrail-alerter", "sns-relay", "heartbeat", "deadman"}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// bootstrap builds all functions once per test binary, exactly as the
// Makefile does for provided.al2023 (but for the host's architecture so they
// run here), and returns the path of one.
func bootstrap(t *testing.T, fn string) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "klaxon-lambdas-")
		if buildErr != nil {
			return
		}
		args := []string{"build", "-tags", "lambda.norpc", "-trimpath", "-o", binDir + string(filepath.Separator)}
		for _, f := range functions {
			args = append(args, "./cmd/"+f)
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out.String())
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, fn)
}

// start runs fn as a Lambda execution environment would: the bootstrap
// binary with AWS_LAMBDA_RUNTIME_API and the function's environment, and
// nothing from the developer's AWS setup.
func start(t *testing.T, fn string, env map[string]string) *runtimeAPI {
	t.Helper()
	bin := bootstrap(t, fn)
	api := newRuntimeAPI(fn)
	t.Cleanup(api.Close)
	cmd := exec.Command(bin)
	base := map[string]string{
		"PATH":                        os.Getenv("PATH"),
		"AWS_LAMBDA_RUNTIME_API":      api.addr(),
		"AWS_LAMBDA_FUNCTION_NAME":    fn,
		"AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
		"AWS_REGION":                  "eu-west-1",
		"AWS_ACCESS_KEY_ID":           "AKIDE2ETEST",
		"AWS_SECRET_ACCESS_KEY":       "secret",
		"AWS_CONFIG_FILE":             os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
		"AWS_EC2_METADATA_DISABLED":   "true",
		"_HANDLER":                    "bootstrap",
		"LOG_LEVEL":                   "debug",
	}
	for k, v := range env {
		base[k] = v
	}
	for k, v := range base {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", fn, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() || testing.Verbose() {
			t.Logf("%s output:\n%s", fn, logs.String())
		}
	})
	return api
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func sample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
