// Command hashburst measures a burst of logins against imported argon2id
// accounts (issue 21): a real `userve serve` over FerretDB + PostgreSQL,
// eight users imported with PHP's default argon2id parameters
// (m=65536,t=4,p=1, 64 MiB a check), then 40 logins at once, five per
// account. It prints the answers by status and the server's peak resident
// memory (VmHWM) next to the tenant pod's default 256 MiB limit.
//
//	go build -o /tmp/userve . && go run ./bench/hashburst -userve-bin /tmp/userve
//
// Run it with an older build for the figure before a change (docs/bench.md).
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/argon2"

	"userve.dev/userve/bench/internal/pgferret"
	"userve.dev/userve/bench/internal/procmon"
	"userve.dev/userve/test/testbin"
)

const (
	adminToken   = "bench-admin-token-0123456789abcdef"
	podLimitMiB  = 256 // controllers/render.DefaultMemoryLimit
	password     = "secret123"
	memoryLimitB = "268435456" // what the operator passes a default pod (USERVE_MEMORY_LIMIT)
)

func main() { os.Exit(run()) }

func run() int {
	bin := flag.String("userve-bin", "", "the userve binary to measure (default <repo>/bin/userve)")
	accounts := flag.Int("accounts", 8, "imported argon2id accounts")
	logins := flag.Int("logins", 40, "logins sent at once, spread over the accounts")
	memory := flag.Uint("m", 65536, "argon2id memory of the imported hashes, KiB")
	passes := flag.Uint("t", 4, "argon2id passes")
	flag.Parse()
	logf := func(format string, args ...any) {
		fmt.Printf("%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	if *bin == "" {
		p, err := testbin.Path("userve")
		if err != nil {
			fmt.Fprintln(os.Stderr, "hashburst:", err)
			return 1
		}
		*bin = p
	}
	ferret, err := testbin.Path("ferretdb")
	if err != nil {
		fmt.Fprintln(os.Stderr, "hashburst:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	defer procmon.StopAll(5 * time.Second)
	logDir, err := os.MkdirTemp("", "userve-hashburst-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "hashburst:", err)
		return 1
	}
	res, err := measure(ctx, *bin, ferret, logDir, *accounts, *logins, uint32(*memory), uint32(*passes), logf)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hashburst:", err, "(logs: "+logDir+")")
		return 1
	}
	out, _ := json.MarshalIndent(res, "", "  ")
	fmt.Println(string(out))
	return 0
}

// Result is what one run measured.
type Result struct {
	Binary       string         `json:"binary"`
	Hash         string         `json:"hash_parameters"`
	Accounts     int            `json:"accounts"`
	Logins       int            `json:"parallel_logins"`
	Statuses     map[string]int `json:"statuses"`
	Seconds      float64        `json:"burst_seconds"`
	SlowestMs    float64        `json:"slowest_answer_ms"`
	ReadyPeakMiB float64        `json:"peak_rss_before_burst_mib"`
	PeakMiB      float64        `json:"peak_rss_mib"`
	PodLimitMiB  int            `json:"pod_limit_mib"`
	UnderLimit   bool           `json:"under_pod_limit"`
}

func measure(ctx context.Context, bin, ferret, logDir string, accounts, logins int, m, t uint32, logf func(string, ...any)) (*Result, error) {
	store, err := pgferret.Start(ctx, ferret, logDir)
	if err != nil {
		return nil, err
	}
	defer store.Stop()
	server, base, err := startServer(ctx, bin, logDir, store.URI)
	if err != nil {
		return nil, err
	}
	defer server.Stop(syscall.SIGTERM, 10*time.Second)

	// Import the accounts through the admin API, as a migration would.
	var body bytes.Buffer
	for i := range accounts {
		rec, _ := json.Marshal(map[string]any{"id": i + 1, "name": fmt.Sprintf("argon%d", i+1), "password": phpArgon2id(password, m, t, i)})
		body.Write(append(rec, '\n'))
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/userve/v1/import/users/?format=thinksns", &body)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/x-ndjson")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	answer, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != http.StatusOK || !bytes.Contains(answer, []byte(fmt.Sprintf(`"created":%d`, accounts))) {
		return nil, fmt.Errorf("import: %d %s", r.StatusCode, answer)
	}
	before, err := procmon.Read(server.Pid())
	if err != nil {
		return nil, err
	}
	logf("imported %d argon2id accounts (m=%d,t=%d,p=1); server peak so far %.1f MiB", accounts, m, t, procmon.MiB(before.HWMKiB))

	// The burst: every login starts at once.
	res := &Result{Binary: bin, Hash: fmt.Sprintf("argon2id m=%d,t=%d,p=1", m, t), Accounts: accounts, Logins: logins,
		Statuses: map[string]int{}, ReadyPeakMiB: procmon.MiB(before.HWMKiB), PodLimitMiB: podLimitMiB}
	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: logins}}
	start := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var slowest time.Duration
	for i := range logins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, _ := json.Marshal(map[string]string{"login": fmt.Sprintf("argon%d", i%accounts+1), "password": password})
			<-start
			t0 := time.Now()
			status := "error"
			resp, err := client.Post(base+"/api/v2/auth/login", "application/json", bytes.NewReader(b))
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				status = resp.Status
			} else {
				status = "transport error: " + err.Error()
			}
			mu.Lock()
			res.Statuses[status]++
			slowest = max(slowest, time.Since(t0))
			mu.Unlock()
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	res.Seconds = time.Since(t0).Seconds()
	res.SlowestMs = float64(slowest.Microseconds()) / 1000
	after, err := procmon.Read(server.Pid())
	if err != nil {
		return nil, fmt.Errorf("reading the server after the burst (killed?): %v; %s", err, server.Tail(1500))
	}
	res.PeakMiB = procmon.MiB(after.HWMKiB)
	res.UnderLimit = res.PeakMiB < podLimitMiB
	keys := make([]string, 0, len(res.Statuses))
	for k := range res.Statuses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d × %s", res.Statuses[k], k))
	}
	logf("%d logins in %.1f s: %s; server peak RSS %.1f MiB (pod limit %d MiB)", logins, res.Seconds, strings.Join(parts, ", "), res.PeakMiB, podLimitMiB)
	return res, nil
}

// phpArgon2id is what PHP's password_hash(PASSWORD_ARGON2ID) writes: a
// 16-byte salt and a 32-byte key in the PHC string format.
func phpArgon2id(password string, m, t uint32, i int) string {
	salt := []byte(fmt.Sprintf("hashburst-salt%02d", i))[:16]
	key := argon2.IDKey([]byte(password), salt, t, m, 1, 32)
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=1$%s$%s", m, t,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

func startServer(ctx context.Context, bin, logDir, mongoURI string) (*procmon.Process, string, error) {
	manifest := filepath.Join(logDir, "userservice.yaml")
	m := "apiVersion: miniapp.userve.dev/v1alpha1\nkind: UserService\nmetadata:\n  name: bench-hashes\n  namespace: bench\nspec: {}\n"
	if err := os.WriteFile(manifest, []byte(m), 0o644); err != nil {
		return nil, "", err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "serve", "--config", manifest, "--listen", addr, "--metrics-listen", "")
	// The environment a default pod gets from the operator.
	cmd.Env = append(os.Environ(), "USERVE_MONGO_URI="+mongoURI, "USERVE_MONGO_DATABASE=bench_hashes",
		"USERVE_ADMIN_TOKENS="+adminToken, "USERVE_JWT_KEY=bench-jwt-key-0123456789abcdef-0123456789abcdef",
		"USERVE_MEMORY_LIMIT="+memoryLimitB)
	p, err := procmon.Start("userve serve (hash burst)", cmd, filepath.Join(logDir, "serve.log"), syscall.SIGKILL)
	if err != nil {
		return nil, "", err
	}
	base := "http://" + addr
	if err := p.AwaitReady(ctx, base+"/readyz", 60*time.Second); err != nil {
		return nil, "", err
	}
	return p, base, nil
}
