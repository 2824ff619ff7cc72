package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
)

// Exit codes scripts can rely on.
const (
	exitFailed      = 1 // the operation or the recovery failed
	exitUsage       = 2 // bad usage
	exitCancelled   = 3 // the recovery was cancelled
	exitUnreachable = 4 // the daemon could not be reached or refused the credentials
)

// exitError carries an exit code.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// rpcError maps a gRPC error to an exit code and a message that says what
// to do.
func rpcError(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Unavailable:
		if rpcerr.Reason(err) != pb.ErrorReason_ERROR_REASON_UNSPECIFIED {
			// The daemon answered: what it needs (a source, the
			// repository) is unavailable, not the daemon.
			return fmt.Errorf("unavailable: %s", st.Message())
		}
		return exitError{exitUnreachable, fmt.Errorf("daemon unreachable: %s (is recoverd running? check --addr)", st.Message())}
	case codes.Unauthenticated, codes.PermissionDenied:
		return exitError{exitUnreachable, fmt.Errorf("refused by the daemon: %s (check --token-file and TLS flags)", st.Message())}
	case codes.InvalidArgument:
		return usageError{errors.New(st.Message())}
	}
	return fmt.Errorf("%s: %s", strings.ToLower(st.Code().String()), st.Message())
}

// connFlags are the flags of commands that talk to a daemon.
type connFlags struct {
	addr, tokenFile, ca, cert, key string
	insecure                       bool
}

func (c *connFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&c.addr, "addr", envOr("RECOVERCTL_ADDR", "127.0.0.1:7400"), "control API address of the daemon [env RECOVERCTL_ADDR]")
	f.StringVar(&c.tokenFile, "token-file", os.Getenv("RECOVERCTL_TOKEN_FILE"), "file holding the bearer token [env RECOVERCTL_TOKEN_FILE]")
	f.StringVar(&c.ca, "tls-ca", os.Getenv("RECOVERCTL_TLS_CA"), "CA that signed the daemon's certificate [env RECOVERCTL_TLS_CA]")
	f.StringVar(&c.cert, "tls-cert", "", "client certificate (optional)")
	f.StringVar(&c.key, "tls-key", "", "client key (optional)")
	f.BoolVar(&c.insecure, "insecure", os.Getenv("RECOVERCTL_INSECURE") == "true", "plaintext, for a daemon started with --insecure [env RECOVERCTL_INSECURE]")
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

type tokenCreds struct {
	token  string
	secure bool
}

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + t.token}, nil
}
func (t tokenCreds) RequireTransportSecurity() bool { return t.secure }

func (c *connFlags) dial() (*grpc.ClientConn, error) {
	var opts []grpc.DialOption
	if c.insecure {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	} else {
		if c.ca == "" {
			return nil, usagef("--tls-ca is needed to verify the daemon (or --insecure for a daemon started with --insecure)")
		}
		pem, err := os.ReadFile(c.ca)
		if err != nil {
			return nil, usagef("--tls-ca: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usagef("--tls-ca %s holds no PEM certificate", c.ca)
		}
		tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}
		if c.cert != "" {
			kp, err := tls.LoadX509KeyPair(c.cert, c.key)
			if err != nil {
				return nil, usagef("--tls-cert/--tls-key: %v", err)
			}
			tc.Certificates = []tls.Certificate{kp}
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	}
	if c.tokenFile != "" {
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return nil, usagef("--token-file: %v", err)
		}
		opts = append(opts, grpc.WithPerRPCCredentials(tokenCreds{token: strings.TrimSpace(string(b)), secure: !c.insecure}))
	}
	return grpc.NewClient(c.addr, opts...)
}

func (c *connFlags) recoveryClient() (pb.RecoveryServiceClient, func(), error) {
	conn, err := c.dial()
	if err != nil {
		return nil, nil, err
	}
	return pb.NewRecoveryServiceClient(conn), func() { conn.Close() }, nil
}
