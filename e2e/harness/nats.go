package harness

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	natsOnce sync.Once
	natsBin  string
	natsErr  error
)

// NATSServerBinary builds nats-server from the module version pinned in
// services/go.mod (the same server Klaxon embeds), once per test binary.
func NATSServerBinary(t testing.TB) string {
	t.Helper()
	natsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "klaxon-e2e-nats")
		if err != nil {
			natsErr = err
			return
		}
		_, file, _, _ := runtime.Caller(0)
		services := filepath.Join(filepath.Dir(file), "..", "..", "services")
		natsBin = filepath.Join(dir, "nats-server")
		cmd := exec.Command("go", "build", "-o", natsBin, "github.com/nats-io/nats-server/v2")
		cmd.Dir = services
		if out, err := cmd.CombinedOutput(); err != nil {
			natsErr = fmt.Errorf("build nats-server: %v\n%s", err, out)
		}
	})
	if natsErr != nil {
		t.Fatal(natsErr)
	}
	return natsBin
}

// NATSNode is one nats-server process of a cluster.
type NATSNode struct {
	Name    string
	Client  string // host:port for clients
	Cluster string // host:port for routes
	dir     string
	args    []string
	cmd     *exec.Cmd
	exited  chan struct{}
	out     *LogBuffer
	t       testing.TB
}

// NATSCluster is a JetStream cluster of separate nats-server processes on
// loopback ports.
type NATSCluster struct {
	Nodes []*NATSNode
}

// StartNATSCluster starts n JetStream nodes routed together and waits until
// JetStream has a leader.
func StartNATSCluster(t testing.TB, n int) *NATSCluster {
	t.Helper()
	NATSServerBinary(t)
	c := &NATSCluster{}
	for i := 0; i < n; i++ {
		c.Nodes = append(c.Nodes, &NATSNode{Name: fmt.Sprintf("n%d", i+1), Client: FreeAddr(t), Cluster: FreeAddr(t), dir: t.TempDir(), t: t})
	}
	var routes []string
	for _, nd := range c.Nodes {
		routes = append(routes, "nats-route://"+nd.Cluster)
	}
	for _, nd := range c.Nodes {
		host, port, _ := net.SplitHostPort(nd.Client)
		conf := filepath.Join(nd.dir, "nats.conf")
		cfg := fmt.Sprintf(`server_name: %s
host: %s
port: %s
jetstream { store_dir: %q }
cluster {
  name: klaxon-test
  listen: %s
  routes: [%s]
}
`, nd.Name, host, port, filepath.Join(nd.dir, "js"), nd.Cluster, strings.Join(routes, ", "))
		if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		nd.args = []string{"-c", conf}
		nd.Start()
		t.Cleanup(nd.Kill)
	}
	return c
}

// URL is a client URL listing every node.
func (c *NATSCluster) URL() string {
	var urls []string
	for _, nd := range c.Nodes {
		urls = append(urls, "nats://"+nd.Client)
	}
	return strings.Join(urls, ",")
}

// Start (re)starts the node with its data.
func (nd *NATSNode) Start() {
	nd.out = &LogBuffer{}
	nd.cmd = exec.Command(natsBin, nd.args...)
	nd.cmd.Stdout, nd.cmd.Stderr = nd.out, nd.out
	if err := nd.cmd.Start(); err != nil {
		nd.t.Fatal(err)
	}
	nd.exited = make(chan struct{})
	go func(c *exec.Cmd, ch chan struct{}) { _ = c.Wait(); close(ch) }(nd.cmd, nd.exited)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", nd.Client); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	nd.t.Fatalf("nats node %s did not listen:\n%s", nd.Name, nd.out.String())
}

// Kill sends SIGKILL.
func (nd *NATSNode) Kill() {
	if nd.cmd == nil || nd.cmd.Process == nil {
		return
	}
	select {
	case <-nd.exited:
		return
	default:
	}
	_ = nd.cmd.Process.Signal(syscall.SIGKILL)
	<-nd.exited
}
