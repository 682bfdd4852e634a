// Command ferretdb-test starts an embedded FerretDB (SQLite backend) for the
// reconciler's integration tests. The stock `go install` binary of v1.24.2
// panics at start (it needs a build-time version file), so the tests start
// FerretDB through its embeddable package instead.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27117", "TCP address to listen on")
	dir := flag.String("dir", "", "directory for the SQLite files (created if missing)")
	handler := flag.String("handler", "sqlite", "backend: sqlite or postgresql")
	pgURL := flag.String("postgresql-url", "", "PostgreSQL URL for the postgresql handler")
	flag.Parse()

	cfg := &ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: *listen},
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Handler:  *handler,
	}
	if *handler == "sqlite" {
		if *dir == "" {
			fmt.Fprintln(os.Stderr, "ferretdb-test: -dir is required for the sqlite handler")
			os.Exit(2)
		}
		if err := os.MkdirAll(*dir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "ferretdb-test:", err)
			os.Exit(1)
		}
		d := *dir
		if d[len(d)-1] != '/' {
			d += "/"
		}
		cfg.SQLiteURL = "file:" + d
	} else {
		cfg.PostgreSQLURL = *pgURL
	}

	f, err := ferretdb.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb-test:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintln(os.Stderr, "ferretdb-test: listening on", *listen)
	if err := f.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb-test:", err)
		os.Exit(1)
	}
}
