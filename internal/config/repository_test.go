package config

import (
	"strings"
	"testing"
	"time"
)

func TestRepository(t *testing.T) {
	const global = "[walkeeper]\nhome = /var/lib/walkeeper\n"
	for _, tc := range []struct {
		name, conf string
		check      func(t *testing.T, r Repository)
		err        string // substring of the error; "" = parses
	}{
		{"none by default", "[pg1]\nconninfo = host=x\n", func(t *testing.T, r Repository) {
			if r.Kind != "" || r.Encryption != "none" || !r.BackupLocalCopy {
				t.Errorf("%+v", r)
			}
		}, ""},
		{"s3 with options, inherited", global + "repository = s3://wal-archive/prod/eu\nrepository_endpoint = https://minio.lan:9000/\n" +
			"repository_path_style = on\nencryption = age\nencryption_passphrase_file = /etc/walkeeper/pass\nlocal_wal_retention = 2 days\n" +
			"[pg1]\nconninfo = host=x\n", func(t *testing.T, r Repository) {
			want := Repository{Kind: "s3", URL: "s3://wal-archive/prod/eu", Bucket: "wal-archive", Prefix: "prod/eu",
				Endpoint: "https://minio.lan:9000", PathStyle: true, Encryption: "age", PassphraseFile: "/etc/walkeeper/pass",
				LocalWALRetention: 48 * time.Hour, BackupLocalCopy: true}
			if r != want {
				t.Errorf("got  %+v\nwant %+v", r, want)
			}
		}, ""},
		{"aws default endpoint", "[pg1]\nconninfo = host=x\nrepository = s3://my-bucket\nrepository_region = eu-west-1\n", func(t *testing.T, r Repository) {
			if r.Endpoint != DefaultS3Endpoint || r.Prefix != "" || r.Region != "eu-west-1" {
				t.Errorf("%+v", r)
			}
		}, ""},
		{"directory", "[pg1]\nconninfo = host=x\nrepository = /mnt/offsite/wk/\nbackup_local_copy = off\n", func(t *testing.T, r Repository) {
			if r.Kind != "dir" || r.Path != "/mnt/offsite/wk" || r.BackupLocalCopy {
				t.Errorf("%+v", r)
			}
		}, ""},
		{"opt out", global + "repository = s3://wal-archive\nrepository_path_style = on\n[pg1]\nconninfo = host=x\nrepository =\n", func(t *testing.T, r Repository) {
			if r.Kind != "" {
				t.Errorf("%+v", r)
			}
		}, ""},
		{"encryption none without repository", "[pg1]\nconninfo = host=x\nencryption = none\n", nil, ""},
		{"relative dir", "[pg1]\nconninfo = host=x\nrepository = offsite\n", nil, "repository = \"offsite\": must be s3://BUCKET[/PREFIX] or an absolute directory path"},
		{"bad bucket", "[pg1]\nconninfo = host=x\nrepository = s3://My_Bucket/x\n", nil, "bucket \"My_Bucket\": only a-z"},
		{"short bucket", "[pg1]\nconninfo = host=x\nrepository = s3://ab\n", nil, "3-63 characters"},
		{"dotted prefix", "[pg1]\nconninfo = host=x\nrepository = s3://bucket/a/../b\n", nil, "not a clean path"},
		{"endpoint with bucket", "[pg1]\nconninfo = host=x\nrepository = s3://bucket\nrepository_endpoint = https://s3.lan/bucket\n", nil, "the server's URL alone"},
		{"endpoint with credentials", "[pg1]\nconninfo = host=x\nrepository = s3://bucket\nrepository_endpoint = https://k:s@s3.lan\n", nil, "must not carry credentials"},
		{"endpoint not a URL", "[pg1]\nconninfo = host=x\nrepository = s3://bucket\nrepository_endpoint = s3.lan\n", nil, "http:// or https:// URL"},
		{"options without repository", "[pg1]\nconninfo = host=x\nrepository_path_style = on\n", nil, "repository_path_style is set but no repository is"},
		{"secret without repository", "[pg1]\nconninfo = host=x\nencryption_key_file = /k\n", nil, "encryption_key_file is set but no repository is"},
		{"age without secret", "[pg1]\nconninfo = host=x\nrepository = s3://bucket\nencryption = age\n", nil, "set one of encryption_key_file"},
		{"two secrets", "[pg1]\nconninfo = host=x\nrepository = s3://bucket\nencryption = age\nencryption_key_file = /k\nencryption_passphrase_command = pass show wk\n", nil, "encryption_key_file and encryption_passphrase_command are set together"},
		{"secret with encryption none", "[pg1]\nconninfo = host=x\nrepository = s3://bucket\nencryption_key_file = /k\n", nil, "encryption_key_file is set but encryption = none"},
		{"relative key file", "[pg1]\nconninfo = host=x\nrepository = s3://bucket\nencryption = age\nencryption_key_file = k\n", nil, "encryption_key_file = \"k\": must be an absolute path"},
		{"unknown cipher", "[pg1]\nconninfo = host=x\nrepository = s3://bucket\nencryption = aes\n", nil, "encryption = \"aes\""},
		{"s3 option on a directory", "[pg1]\nconninfo = host=x\nrepository = /mnt/x\nrepository_region = eu\n", nil, "only for an s3:// repository"},
		{"directory inside home", global + "[pg1]\nconninfo = host=x\nrepository = /var/lib/walkeeper/offsite\n", nil, "inside home"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.conf), "w.conf")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %v, want one line containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, c.Servers[0].Repository)
			}
		})
	}
}
