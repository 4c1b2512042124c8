package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	"sigs.k8s.io/yaml"
)

// The Kubernetes manifest of the sharded soak is a valid indexed Job by
// the API's own types (an unknown or misspelt field is refused), and each
// of its pods runs a distinct shard of one soak: one --seed, --shard
// JOB_COMPLETION_INDEX+1 of as many as the Job completes.
func TestTheKubernetesSoakManifestIsAnIndexedJobOfDisjointShards(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "k8s", "soak-job.yaml"))
	require.NoError(t, err)
	var job batchv1.Job
	require.NoError(t, yaml.UnmarshalStrict(b, &job), "the manifest decodes strictly into batch/v1 Job")
	require.Equal(t, "batch/v1", job.APIVersion)
	require.Equal(t, "Job", job.Kind)
	require.NotNil(t, job.Spec.CompletionMode)
	require.Equal(t, batchv1.IndexedCompletion, *job.Spec.CompletionMode)
	require.NotNil(t, job.Spec.Completions)
	n := *job.Spec.Completions
	require.Equal(t, n, *job.Spec.Parallelism, "every shard runs at once")
	require.Len(t, job.Spec.Template.Spec.Containers, 1)
	c := job.Spec.Template.Spec.Containers[0]
	script := strings.Join(append(append([]string{}, c.Command...), c.Args...), " ")
	require.Contains(t, script, `--shard "$((JOB_COMPLETION_INDEX + 1))/`+strconv.Itoa(int(n))+`"`, "pod k runs shard k+1 of n")
	require.Contains(t, script, `--seed "$SEED"`, "one seed for every shard")
	require.Contains(t, script, `--store "/store/shard-$((JOB_COMPLETION_INDEX + 1))"`, "a store per shard")
	names := map[string]bool{}
	for _, e := range c.Env {
		names[e.Name] = true
	}
	require.True(t, names["SEED"], "SEED is set once, in the Job")
	mounted := false
	for _, m := range c.VolumeMounts {
		mounted = mounted || m.MountPath == "/store"
	}
	require.True(t, mounted, "the stores outlive the pods")
}
