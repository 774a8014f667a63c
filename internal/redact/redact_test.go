package redact

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/redact/redacttest"
)

func TestRedact(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"token: abc.def", "token: [REDACTED]"},
		{`{"token":"abc","id":1}`, `{"token":"[REDACTED]","id":1}`},
		{`aws_secret_access_key = wJalrXUt`, `aws_secret_access_key = [REDACTED]`},
		{"PASSWORD=x y", "PASSWORD=[REDACTED] y"},
		{"- name: GITHUB_TOKEN\n  value: ghp_abc\n", "- name: GITHUB_TOKEN\n  value: [REDACTED]\n"},
		{`{"name": "DB_PASSWORD", "value": "pw"}`, `{"name": "DB_PASSWORD", "value": "[REDACTED]"}`},
		{"Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic [REDACTED]"},
		{"aws key AKIAIOSFODNN7EXAMPLE used", "aws key [REDACTED] used"},
		// Not secrets: left alone.
		{"tokens: 5", "tokens: 5"},
		{"kernel.pid_max = 4194304", "kernel.pid_max = 4194304"},
		{"Basic authentication failed", "Basic authentication failed"},
		{"key: nvme1n1", "key: nvme1n1"},
		{"certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t", "certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t"},
	} {
		got, _ := Bytes([]byte(c.in))
		if string(got) != c.want {
			t.Errorf("Bytes(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	key := redacttest.ECKeyPEM(t)
	in := fmt.Sprintf("before\n%safter\nb64 %s end", key, base64.StdEncoding.EncodeToString(key))
	got, n := Bytes([]byte(in))
	if want := "before\n[REDACTED PRIVATE KEY]\nafter\nb64 [REDACTED] end"; string(got) != want || n != 2 {
		t.Errorf("Bytes(keys) = %q (%d), want %q (2)", got, n, want)
	}
	// A key cut off by a size limit is redacted to the end.
	got, _ = Bytes(key[:len(key)/2])
	if string(got) != "[REDACTED PRIVATE KEY]" {
		t.Errorf("truncated key: %q", got)
	}
}

// TestScanClasses has one case for each credential form the pattern pass
// knows; the first group are the defects of issue 13, which the previous
// redactor let through.
func TestScanClasses(t *testing.T) {
	for _, c := range []struct{ in, want, class string }{
		// Registry credentials: containerd TOML, Docker's config.json.
		{`  auth = "dXNlcjpwYXNzd29yZA=="`, `  auth = "[REDACTED]"`, Assignment},
		{`{"auths":{"r.example.com":{"auth":"dXNlcjpwYXNzd29yZA=="}}}`, `{"auths":{"r.example.com":{"auth":"[REDACTED]"}}}`, Assignment},
		// Passwords in URLs: proxies, registry mirrors, git and helm.
		{"HTTPS_PROXY=http://u:pr0xyPW@proxy.corp:3128", "HTTPS_PROXY=http://u:[REDACTED]@proxy.corp:3128", URLPassword},
		{"https_proxy=u:pr0xyPW@proxy.corp:3128", "https_proxy=u:[REDACTED]@proxy.corp:3128", URLPassword},
		{`endpoint = ["https://mirror:m1rrorPW@mirror.example.com"]`, `endpoint = ["https://mirror:[REDACTED]@mirror.example.com"]`, URLPassword},
		{"+ git clone https://deploy:g1tPW@github.com/acme/app.git", "+ git clone https://deploy:[REDACTED]@github.com/acme/app.git", URLPassword},
		{"helm repo add acme https://helm:h3lmPW@charts.acme.io/stable", "helm repo add acme https://helm:[REDACTED]@charts.acme.io/stable", URLPassword},
		{"git clone https://x0ghtoken0123456789abcdef@github.com/a/b", "git clone https://[REDACTED]@github.com/a/b", URLPassword},
		// Environment files, GitHub tokens, mysql.
		{"DB_PASS=s3cr3t", "DB_PASS=[REDACTED]", Assignment},
		{"export CI=ghp_0123456789abcdefghijABCDEFGHIJ012345", "export CI=[REDACTED]", Token},
		{"gho_0123456789abcdefghijABCDEFGHIJ012345 ghs_0123456789abcdefghijABCDEFGHIJ012345", "[REDACTED] [REDACTED]", Token},
		{"github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "[REDACTED]", Token},
		{"mysql -h db -u app -pMyPW123 -e 'select 1'", "mysql -h db -u app -p[REDACTED] -e 'select 1'", CommandPassword},
		// The closing quote of a header inside a string stays.
		{`curl -H "X-aws-ec2-metadata-token: AQAEAFakeToken==" http://169.254.169.254/`, `curl -H "X-aws-ec2-metadata-token: [REDACTED]" http://169.254.169.254/`, Assignment},
		{`"X-aws-ec2-metadata-token: V"`, `"X-aws-ec2-metadata-token: [REDACTED]"`, Assignment},
		{`msg="login failed password=abc" next`, `msg="login failed password=[REDACTED]" next`, Assignment},

		// AWS.
		{"AKIAIOSFODNN7EXAMPLE,wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "[REDACTED]", AWSKey},
		{"aws configure set aws_secret_access_key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws configure set aws_secret_access_key [REDACTED]", Assignment},
		{"AWS_SESSION_TOKEN=FwoGZXIvYXdzEBAaDH", "AWS_SESSION_TOKEN=[REDACTED]", AWSSessionToken},
		{"aws_session_token = something-opaque", "aws_session_token = [REDACTED]", Assignment},
		{"creds ok, token IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ== expires", "creds ok, token [REDACTED] expires", AWSSessionToken},
		{`{"AccessKeyId":"ASIAIOSFODNN7EXAMPLE","SecretAccessKey":"wJalrXUt","Token":"opaque","Expiration":"2026"}`,
			`{"AccessKeyId":"[REDACTED]","SecretAccessKey":"[REDACTED]","Token":"[REDACTED]","Expiration":"2026"}`, Assignment},
		{"GET /k?X-Amz-Security-Token=abc%2Bdef&X-Amz-Signature=0123abcd&x-id=GetObject", "GET /k?X-Amz-Security-Token=[REDACTED]&X-Amz-Signature=[REDACTED]&x-id=GetObject", Assignment},
		// Bearer tokens and JWTs.
		{"Authorization: Bearer abc.def.ghi123", "Authorization: Bearer [REDACTED]", Authorization},
		{"headers: map[Authorization:[Bearer abcdefgh12345]]", "headers: map[Authorization:[Bearer [REDACTED]]]", Authorization},
		{"retrying with bearer 0123456789abcdef", "retrying with bearer [REDACTED]", Authorization},
		{"id eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl done", "id [REDACTED] done", JWT},
		{"exec plugin returned k8s-aws-v1.aHR0cHM6Ly9zdHM", "exec plugin returned [REDACTED]", Token},
		{"kubeadm join --token 07401b.f395accd246ae52d", "kubeadm join --token [REDACTED]", Token},
		// Key-value forms.
		{"password: two words here\nnext: 1", "password: [REDACTED]\nnext: 1", Assignment},
		{"password: |\n  line one\n  line two\nnext: 1\n", "password: [REDACTED]\nnext: 1\n", Assignment},
		{`client_secret = "a b c"`, `client_secret = "[REDACTED]"`, Assignment},
		{"SSL_KEY=abcdef", "SSL_KEY=[REDACTED]", Assignment},
		{"https://api.example.com/v1?token=abc123&page=2", "https://api.example.com/v1?token=[REDACTED]&page=2", Assignment},
		// Command lines, also NUL-separated as in /proc/*/cmdline.
		{"helm repo add --username u --password h3lm acme", "helm repo add --username u --password [REDACTED] acme", Assignment},
		{"kubelet\x00--token\x00SECRETX\x00--v=2", "kubelet\x00--token\x00[REDACTED]\x00--v=2", Assignment},
		{"tool --password=PWX --v=2", "tool --password=[REDACTED] --v=2", Assignment},
		{"mysql\x00-u\x00app\x00-p\x00PW2\x00db", "mysql\x00-u\x00app\x00-p\x00[REDACTED]\x00db", CommandPassword},
		{"sshpass -p PWSSH ssh host", "sshpass -p [REDACTED] ssh host", CommandPassword},
		{"curl -u admin:PWCURL https://x", "curl -u admin:[REDACTED] https://x", CommandPassword},
		// Process environment.
		{"DB_PASS=abc\x00HOME=/root\x00PATH=/bin", "DB_PASS=[REDACTED]\x00HOME=/root\x00PATH=/bin", Assignment},
	} {
		got, counts := Scan([]byte(c.in))
		if string(got) != c.want {
			t.Errorf("Scan(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
		if counts[c.class] == 0 {
			t.Errorf("Scan(%q) counted %v, want class %s", c.in, counts, c.class)
		}
	}
}

// TestNotSecrets lists lines from real logs and configs the pattern pass
// must leave alone: a redactor that eats them makes bundles useless.
func TestNotSecrets(t *testing.T) {
	for _, s := range []string{
		"tokens: 5", "max_tokens=5", "key: nvme1n1", "tokenFile: /var/run/secrets/token",
		"using bearer authentication", `secret "foo" not found`, "Basic authentication failed",
		"fs.verity.require_signatures = 0", "net.ipv4.tcp_fastopen_key = 00000000-00000000-00000000-00000000",
		"X-aws-ec2-metadata-token-ttl-seconds: 21600", "auth_type: bearer", "password_min_length: 8",
		"ssh://git@github.com/acme/app.git", "https://github.com/acme/app.git", "insecure: true",
		"kubelet --node-ip=10.0.1.42 --hostname-override=ip-10-0-1-42.ec2.internal",
		"AWS_ACCESS_KEY_ID is not set", "AWS_PROFILE=node",
		"Jan 01 kernel: XFS (nvme1n1): Metadata corruption detected at xfs_buf_ioend+0x2c/0x90",
		"/usr/bin/containerd --config /etc/containerd/config.toml",
		`TOKEN=$(curl -s -X PUT http://169.254.169.254/latest/api/token)`, `password: ${DB_PASSWORD}`,
	} {
		if got, c := Scan([]byte(s)); string(got) != s {
			t.Errorf("Scan(%q) = %q (%v); not a secret", s, got, c)
		}
	}
	// A certificate, in PEM, base64 PEM and base64 DER, is public and kept.
	cert := testCert(t)
	for _, s := range []string{
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert})),
		"certificate-authority-data: " + base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert})),
		"ca " + base64.StdEncoding.EncodeToString(cert),
	} {
		if got, _ := Scan([]byte(s)); string(got) != s {
			t.Errorf("certificate redacted: %q", got)
		}
	}
}

func testCert(t testing.TB) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "system:node:ip-10-0-1-42"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestDERKeys: private keys in base64 DER without a PEM header, as
// echoed into logs or stored in variables, in every container format.
func TestDERKeys(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaPKCS8, err := x509.MarshalPKCS8PrivateKey(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	for name, der := range map[string][]byte{
		"pkcs1-rsa": x509.MarshalPKCS1PrivateKey(rsaKey), "pkcs8-rsa": rsaPKCS8,
		"sec1-ec": redacttest.ECKeyDER(t), "pkcs8-ed25519": redacttest.Ed25519KeyDER(t),
	} {
		b64 := base64.StdEncoding.EncodeToString(der)
		var wrapped strings.Builder
		for i := 0; i < len(b64); i += 64 {
			wrapped.WriteString(b64[i:min(len(b64), i+64)] + "\n")
		}
		js, _ := json.Marshal(map[string]string{"message": "key " + wrapped.String()})
		for form, in := range map[string]string{
			"line":    "+ echo " + b64 + " | base64 -d > /etc/pki/app.key\n",
			"wrapped": "key:\n" + wrapped.String() + "done\n",
			"json":    string(js),
		} {
			got, c := Scan([]byte(in))
			for i := 0; i+16 <= len(b64); i += 16 {
				if strings.Contains(string(got), b64[i:i+16]) {
					t.Errorf("%s %s: key material %q left in %q", name, form, b64[i:i+16], got)
					break
				}
			}
			if c[PrivateKey] == 0 {
				t.Errorf("%s %s: not counted as a private key: %v", name, form, c)
			}
		}
	}
}

func TestStructured(t *testing.T) {
	kc := `apiVersion: v1
users:
- name: kubelet
  user:
    token: tok-SECRET1
    tokenFile: /var/lib/kubelet/token
    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem
    exec:
      command: aws
      args: [eks, get-token, --cluster-name, demo, --token, SECRET2, "--password=SECRET3"]
      env:
      - name: AUTH_BLOB
        value: SECRET4
      - name: AWS_PROFILE
        value: node-profile
      - name: HTTPS_PROXY
        value: http://u:SECRET5@proxy:3128
`
	out, c, err := YAML([]byte(kc))
	if err != nil {
		t.Fatal(err)
	}
	checkRedacted(t, "kubeconfig", out, []string{"SECRET1", "SECRET2", "SECRET3", "SECRET4", "SECRET5"},
		[]string{"tokenFile: /var/lib/kubelet/token", "node-profile", "--cluster-name", "proxy:3128", "kubelet-client-current.pem"})
	if c[CredentialField] != 1 || c[Environment] != 1 || c[Assignment] != 2 || c[URLPassword] != 1 {
		t.Errorf("kubeconfig counts %v", c)
	}

	toml := `version = 2
# password = "SECRET0"
[plugins."io.containerd.grpc.v1.cri".registry.configs."registry.example.com".auth]
  username = "ci"
  password = "SECRET1"
  auth = "SECRET2"
  identitytoken = "SECRET3"
[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
  endpoint = ["https://m:SECRET4@mirror.example.com"]
[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
`
	out, _, err = TOML([]byte(toml))
	if err != nil {
		t.Fatal(err)
	}
	checkRedacted(t, "containerd", out, []string{"SECRET0", "SECRET1", "SECRET2", "SECRET3", "SECRET4"}, []string{"overlayfs", "mirror.example.com", "registry.example.com"})

	docker := `{"auths":{"https://index.docker.io/v1/":{"auth":"SECRET1","identitytoken":"SECRET2"}},"credHelpers":{"123.dkr.ecr.us-west-2.amazonaws.com":"ecr-login"}}`
	out, _, err = JSON([]byte(docker))
	if err != nil {
		t.Fatal(err)
	}
	checkRedacted(t, "docker", out, []string{"SECRET1", "SECRET2"}, []string{"ecr-login", "https://index.docker.io/v1/"})

	env := "# proxy\nexport HTTPS_PROXY=http://u:SECRET1@proxy:3128\nDB_PASS=\"SECRET2\"\nKUBELET_ARGS=\"--node-ip=10.0.1.42\"\n"
	out, _, err = Env([]byte(env), '\n')
	if err != nil {
		t.Fatal(err)
	}
	checkRedacted(t, "env", out, []string{"SECRET1", "SECRET2"}, []string{"proxy:3128", "--node-ip=10.0.1.42", "# proxy"})
	out, _, err = Env([]byte("HOME=/root\x00SSL_KEY=SECRET1\x00\x01SECRET2\x00"), 0)
	if err != nil {
		t.Fatal(err)
	}
	checkRedacted(t, "environ", out, []string{"SECRET1", "SECRET2"}, []string{"HOME=/root\n"})

	args, _ := Args([]string{"/usr/bin/mysql", "-u", "app", "-pSECRET1", "--password", "SECRET2 with space", "--token=SECRET3", "--region", "us-west-2"})
	checkRedacted(t, "args", []byte(strings.Join(args, " ")), []string{"SECRET1", "SECRET2", "SECRET3", "with space"}, []string{"us-west-2", "-u app"})

	// An exec plugin's args have no command in front.
	args, _ = Args([]string{"--registry-token", "SECRET1", "--region", "us-west-2"})
	checkRedacted(t, "plugin args", []byte(strings.Join(args, " ")), []string{"SECRET1"}, []string{"--registry-token", "us-west-2"})

	// Content that does not parse is an error, never passed through.
	for name, fn := range map[string]func([]byte) ([]byte, Counts, error){"YAML": YAML, "JSON": JSON, "TOML": TOML} {
		if out, _, err := fn([]byte("token: [SECRET\n\t- {")); err == nil {
			t.Errorf("%s accepted broken input: %q", name, out)
		}
	}
	if _, _, err := Env([]byte("A=1\nnot an assignment SECRET\n"), '\n'); err == nil {
		t.Error("Env accepted a line that is not NAME=VALUE")
	}
}

func checkRedacted(t *testing.T, what string, out []byte, secrets, keep []string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(string(out), s) {
			t.Errorf("%s: %q left in:\n%s", what, s, out)
		}
	}
	for _, k := range keep {
		if !strings.Contains(string(out), k) {
			t.Errorf("%s: lost %q:\n%s", what, k, out)
		}
	}
}

// A finding message: what String is called on per finding.
const findingMessage = `kubelet: "Failed to pull image \"registry.example.com/app:v1\": rpc error: code = Unknown desc = failed to resolve reference: unexpected status 401 Unauthorized"`

func BenchmarkString(b *testing.B) {
	for name, s := range map[string]string{
		"clean":  findingMessage,
		"secret": findingMessage + " via https://u:pw@mirror.example.com with Authorization: Bearer abcdef0123456789",
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(s)))
			for b.Loop() {
				String(s)
			}
		})
	}
}

// BenchmarkScanLog is the bundle's case: a large journal.
func BenchmarkScanLog(b *testing.B) {
	var log strings.Builder
	for i := 0; log.Len() < 4<<20; i++ {
		fmt.Fprintf(&log, "2026-03-01T12:00:%02d.123456+0000 ip-10-0-1-42 kubelet[1234]: I0301 12:00:00.123456    1234 kubelet.go:2345] \"SyncLoop (probe)\" probe=\"readiness\" status=\"ready\" pod=\"kube-system/coredns-%d\" key=%d\n", i%60, i, i)
		if i%1000 == 0 {
			log.WriteString("Mar 01 12:00:00 ip kubelet[1]: request failed: Authorization: Bearer abcdef0123456789 token=xyz\n")
		}
	}
	in := []byte(log.String())
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		Scan(in)
	}
}
