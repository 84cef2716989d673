package fakes

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// Dynalite starts the npm dynalite server (DynamoDB API, in memory) on a
// free loopback port and returns its URL. It stops with the test.
func Dynalite(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("dynalite")
	if err != nil {
		Missing(t, "dynalite")
	}
	// Port 0 and the "listening at" line avoid guessing a free port.
	cmd := exec.Command(bin, "--host", "127.0.0.1", "--port", "0",
		"--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dynalite: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	re := regexp.MustCompile(`listening at: https?://[^:]+:(\d+)`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case port := <-found:
		return "http://127.0.0.1:" + port
	case <-time.After(20 * time.Second):
		t.Fatal("dynalite did not report its port within 20s")
	}
	return ""
}

// GoAWS starts goaws (SNS) with a config written here: one topic whose only
// subscription is an HTTP endpoint of the test (never goaws' shipped
// default, which subscribes an outside address). It returns the endpoint URL
// and the topic ARN.
func GoAWS(t testing.TB, topic, subscriberURL string) (endpoint, topicARN string) {
	t.Helper()
	bin, err := exec.LookPath("goaws")
	if err != nil {
		Missing(t, "goaws")
	}
	port := freePort(t)
	const account = "100010001000"
	topicARN = "arn:aws:sns:us-east-1:" + account + ":" + topic
	cfg := fmt.Sprintf(`Local:
  Host: 127.0.0.1
  Port: %d
  Region: us-east-1
  AccountId: "%s"
  LogToFile: false
  EnableDuplicates: false
  Queues: []
  Topics:
    - Name: %s
      Subscriptions:
        - Protocol: http
          EndPoint: %s
          TopicArn: %s
          Raw: false
`, port, account, topic, subscriberURL, topicARN)
	dir := t.TempDir()
	path := filepath.Join(dir, "goaws.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", path, "Local")
	cmd.Dir = dir
	if testing.Verbose() {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start goaws: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := "127.0.0.1:" + strconv.Itoa(port)
	waitListening(t, addr, 20*time.Second)
	return "http://" + addr, topicARN
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitListening dials addr until it accepts. A server exposes no readiness
// signal here but its socket, so this is the condition to wait for; each
// dial blocks briefly rather than spinning.
func waitListening(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var d net.Dialer
	for attempt := 0; ; attempt++ {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%s not listening after %s: %v", addr, timeout, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(min(attempt+1, 10)) * 20 * time.Millisecond):
		}
	}
}
