package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"
	"k8s.io/client-go/tools/clientcmd"

	"userve.dev/userve/migration"
)

// tenantFlags are the flags import and export share: where the tenant is
// and how to authenticate.
type tenantFlags struct {
	url, tokenFile, kube, kubeconfig string
}

func (tf *tenantFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&tf.url, "url", "", "the tenant's base URL, e.g. http://127.0.0.1:8080 (with --kube: overrides status.endpoint, e.g. for a port-forward)")
	fs.StringVar(&tf.tokenFile, "token-file", "", "file holding an admin token (default: $USERVE_ADMIN_TOKEN)")
	fs.StringVar(&tf.kube, "kube", "", "namespace/name of a UserService: read its URL and admin token from the cluster")
	fs.StringVar(&tf.kubeconfig, "kubeconfig", "", "kubeconfig for --kube (default: $KUBECONFIG or ~/.kube/config, or in-cluster)")
}

// client resolves the flags into a client.
func (tf *tenantFlags) client(ctx context.Context) (*migration.Client, error) {
	c := &migration.Client{BaseURL: tf.url, Retries: 5, HTTP: migration.NewHTTPClient(10 * time.Minute)}
	if tf.kube != "" {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		rules.ExplicitPath = tf.kubeconfig
		cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("--kube: %w", err)
		}
		t, err := migration.FromCluster(ctx, cfg, tf.kube)
		if err != nil {
			return nil, err
		}
		c.Token = t.Token
		if c.BaseURL == "" {
			c.BaseURL = t.URL
		}
	}
	switch {
	case tf.tokenFile != "":
		data, err := os.ReadFile(tf.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		c.Token = migration.FirstToken(string(data))
	case c.Token == "":
		c.Token = migration.FirstToken(os.Getenv("USERVE_ADMIN_TOKEN"))
	}
	if c.BaseURL == "" {
		return nil, errors.New("the tenant is unknown: give --url or --kube namespace/name")
	}
	if c.Token == "" {
		return nil, errors.New("no admin token: give --token-file, set USERVE_ADMIN_TOKEN or use --kube")
	}
	return c, nil
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

func runImport(args []string) int { return importMain(args, os.Stdout, os.Stderr) }

func importMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("userve import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var tf tenantFlags
	tf.register(fs)
	format := fs.String("format", "", "the file's format: minapp, thinksns or userve (required)")
	policy := fs.String("on-conflict", "skip", "what to do with a record whose openid, unionid, name, email, phone or source id exists: skip, update or fail")
	batch := fs.Int("batch-size", 1000, "records a request, 1 to 1000")
	concurrency := fs.Int("concurrency", 2, "batches in flight at once, 1 to 8 (the tenant imports two at a time)")
	dryRun := fs.Bool("dry-run", false, "validate every record against the tenant without writing")
	checkpoint := fs.String("checkpoint", "", "checkpoint file for resuming (default FILE.checkpoint)")
	report := fs.String("errors", "", "JSON Lines report of the records that failed (default FILE.errors.jsonl)")
	progress := fs.String("progress", "auto", "auto (a bar on a terminal, lines otherwise), bar, lines or none")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: userve import --format minapp|thinksns|userve [flags] FILE\n\nStreams FILE (JSON Lines or a JSON array, any size) to the tenant's bulk import in batches.\nRe-running after an interruption resumes after the records already in.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 || *format == "" {
		fs.Usage()
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := tf.client(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "userve import:", err)
		return 2
	}
	opt := migration.ImportOptions{Client: c, File: fs.Arg(0), Format: *format, Policy: *policy, DryRun: *dryRun,
		BatchSize: *batch, Concurrency: *concurrency, Checkpoint: *checkpoint, ErrorReport: *report}
	if *concurrency < 1 || *concurrency > 8 {
		fmt.Fprintln(stderr, "userve import: --concurrency must be 1 to 8")
		return 2
	}
	if err := progressMode(*progress, stderr, &opt.Progress, &opt.Terminal); err != nil {
		fmt.Fprintln(stderr, "userve import:", err)
		return 2
	}
	sum, err := migration.Import(ctx, opt)
	fmt.Fprintln(stdout, sum.String())
	if err != nil {
		fmt.Fprintln(stderr, "userve import:", err)
		if !sum.Complete && !*dryRun {
			fmt.Fprintln(stderr, "userve import: run the same command again to resume")
		}
		return 1
	}
	if sum.Errors > 0 {
		return 3
	}
	return 0
}

// progressMode sets where progress goes and whether it is a bar.
func progressMode(mode string, stderr io.Writer, w *io.Writer, bar *bool) error {
	f, isFile := stderr.(*os.File)
	switch mode {
	case "auto":
		*w, *bar = stderr, isFile && isTerminal(f) && !strings.EqualFold(os.Getenv("TERM"), "dumb")
	case "bar":
		*w, *bar = stderr, true
	case "lines":
		*w = stderr
	case "none":
	default:
		return fmt.Errorf("--progress %q must be auto, bar, lines or none", mode)
	}
	return nil
}
