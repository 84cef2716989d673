package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/klaxon-sh/klaxon/e2e/harness"
)

// TestNATSCluster: deploy/nats is a 3-node JetStream cluster whose config
// names exactly its own pods as routes through its headless Service, stores
// JetStream on the PVC below the volume's size, and parses under the real
// nats-server (the version Klaxon embeds).
func TestNATSCluster(t *testing.T) {
	r := render(t, filepath.Join(root, "nats"))
	if len(r.StatefulSets) != 1 {
		t.Fatalf("%d StatefulSets, want the NATS one", len(r.StatefulSets))
	}
	sts := r.StatefulSets[0]
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 3 {
		t.Fatalf("replicas %v, want 3 (R3 streams, one node may be down)", sts.Spec.Replicas)
	}
	var headless bool
	for _, s := range r.Services {
		if s.Name == sts.Spec.ServiceName {
			headless = s.Spec.ClusterIP == "None" && s.Spec.PublishNotReadyAddresses && hasServicePort(r, s.Name, 6222)
		}
	}
	if !headless {
		t.Errorf("serviceName %s: want a headless Service publishing not-ready pods with the cluster port 6222", sts.Spec.ServiceName)
	}
	w := r.workloads()[0]
	checkPDB(t, r, w)
	c := sts.Spec.Template.Spec.Containers[0]
	checkContainer(t, w, c)

	// The config file, as the pod sees it.
	var conf string
	for _, v := range sts.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil {
			cm := r.configMap(v.ConfigMap.Name)
			if cm == nil {
				t.Fatalf("volume %s: ConfigMap %s not rendered", v.Name, v.ConfigMap.Name)
			}
			conf = cm.Data["nats.conf"]
		}
	}
	if !slices.Contains(c.Args, "/etc/nats/nats.conf") || conf == "" {
		t.Fatalf("nats runs %v without the nats.conf of its ConfigMap", c.Args)
	}
	var routes []string
	for _, m := range regexp.MustCompile(`nats://([a-z0-9.-]+):6222`).FindAllStringSubmatch(conf, -1) {
		routes = append(routes, m[1])
	}
	var want []string
	for i := range int(*sts.Spec.Replicas) {
		want = append(want, fmt.Sprintf("%s-%d.%s", sts.Name, i, sts.Spec.ServiceName))
	}
	if !slices.Equal(routes, want) {
		t.Errorf("routes %v, want every pod through the headless service %v", routes, want)
	}
	store := regexp.MustCompile(`store_dir:\s*(\S+)`).FindStringSubmatch(conf)
	maxFile := regexp.MustCompile(`max_file_store:\s*(\d+)G`).FindStringSubmatch(conf)
	if store == nil || maxFile == nil {
		t.Fatalf("nats.conf: want jetstream store_dir and max_file_store (in G)\n%s", conf)
	}
	onPVC := false
	for _, m := range c.VolumeMounts {
		if strings.HasPrefix(store[1], m.MountPath) && claimed(r, w, m.Name) {
			for _, pvc := range sts.Spec.VolumeClaimTemplates {
				if pvc.Name == m.Name {
					onPVC = true
					size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
					limit := resource.MustParse(maxFile[1] + "Gi")
					if limit.Cmp(size) >= 0 {
						t.Errorf("max_file_store %sG does not leave room on the %s volume", maxFile[1], size.String())
					}
				}
			}
		}
	}
	if !onPVC {
		t.Errorf("JetStream store_dir %s is not on a PersistentVolumeClaim", store[1])
	}

	// The real server parses it ($POD_NAME from the pod's env).
	dir := t.TempDir()
	file := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	check := func() ([]byte, error) {
		cmd := exec.Command(harness.NATSServerBinary(t), "-t", "-c", file)
		cmd.Env = append(os.Environ(), "POD_NAME=nats-0")
		return cmd.CombinedOutput()
	}
	if out, err := check(); err != nil {
		t.Fatalf("nats-server -t: %v\n%s", err, out)
	}
	// And rejects a broken one, so the check above can fail.
	if err := os.WriteFile(file, []byte(conf+"\njetstream { bogus_option: 1 }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := check(); err == nil {
		t.Fatalf("nats-server -t accepted an unknown option:\n%s", out)
	}
}
