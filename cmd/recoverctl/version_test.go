package main

import (
	"testing"

	"github.com/recoverd/recoverd/internal/buildinfo"
	"github.com/recoverd/recoverd/shardstore"
)

// TestVersionCommand: recoverctl version prints this build, as JSON too.
func TestVersionCommand(t *testing.T) {
	var v versionOutput
	spJSON(t, &v, "version")
	if v.Info != buildinfo.Read() || v.WriterVersion != shardstore.WriterVersion || v.FormatVersion != shardstore.FormatVersion {
		t.Fatalf("version %+v", v)
	}
	if out := spMust(t, "version"); out != "recoverctl "+buildinfo.Read().String()+"; shard writer version 0.1.0, format 1\n" {
		t.Fatalf("version: %q", out)
	}
	if _, err := spRun(t, "version", "extra"); !spIsUsage(err) {
		t.Fatalf("version extra: %v, want a usage error", err)
	}
}
