package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"userve.dev/userve/migration"
)

func runExport(args []string) int { return exportMain(args, os.Stdout, os.Stderr) }

func exportMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("userve export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var tf tenantFlags
	tf.register(fs)
	where := fs.String("where", "", `only users matching this v2.2 where JSON, e.g. {"gender":1}`)
	withHash := fs.Bool("include-password-hash", false, "also export password hashes (the tenant logs that it did)")
	out := fs.String("out", "-", "output file (JSON Lines); - is standard output")
	progress := fs.String("progress", "auto", "auto, bar, lines or none (on standard error)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: userve export [flags]\n\nWrites every user of the tenant as JSON Lines in userve's own format, which `userve import --format userve` reads.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := tf.client(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "userve export:", err)
		return 2
	}
	var w io.Writer = stdout
	var f *os.File
	if *out != "-" {
		if f, err = os.OpenFile(*out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600); err != nil {
			fmt.Fprintln(stderr, "userve export:", err)
			return 1
		}
		w = f
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	opt := migration.ExportOptions{Client: c, Where: *where, WithHash: *withHash, Out: bw}
	if err := progressMode(*progress, stderr, &opt.Progress, &opt.Terminal); err != nil {
		fmt.Fprintln(stderr, "userve export:", err)
		return 2
	}
	n, took, err := migration.Export(ctx, opt)
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	fmt.Fprintf(stderr, "exported %d users in %s (%.0f users/s)\n", n, took.Round(1e6), float64(n)/max(took.Seconds(), 1e-3))
	if err != nil {
		fmt.Fprintln(stderr, "userve export:", err)
		return 1
	}
	return 0
}
