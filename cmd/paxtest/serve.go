package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/paxtest/paxtest/reports"
)

type serveOptions struct {
	Store string
	Addr  string
}

func newCmdServe(stdout, _ io.Writer) *cobra.Command {
	o := serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Browse the store: runs newest first, coloured by verdict, with reports and downloads",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), o, stdout)
		},
	}
	cmd.Flags().StringVar(&o.Store, "store", "store", "directory that keeps the runs")
	cmd.Flags().StringVar(&o.Addr, "addr", "127.0.0.1:8080", "address to listen on (loopback by default)")
	return cmd
}

func runServe(ctx context.Context, o serveOptions, stdout io.Writer) error {
	if st, err := os.Stat(o.Store); err != nil || !st.IsDir() {
		return usagef("--store %s is not a directory", o.Store)
	}
	h, err := reports.StoreHandler(o.Store)
	if err != nil {
		return usagef("--store: %v", err)
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return usagef("--addr %s: %v (is the port in use?)", o.Addr, err)
	}
	ctx, stop := interruptible(ctx)
	defer stop()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(stdout, "serving %s on http://%s/\n", o.Store, ln.Addr())
	shut := make(chan error, 1)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		shut <- srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	if err := <-shut; err != nil {
		return fmt.Errorf("shut down the server: %w", err)
	}
	return nil
}
