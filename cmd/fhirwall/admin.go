package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fhirwall/fhirwall/guard"
)

func runAdmin(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "Usage: fhirwall admin revoke|restore|list --config FILE [--agent ID] [--jti ID] [--reason TEXT]")
		return exitError{2}
	}
	sub, args := args[0], args[1:]
	fs := newFlags("admin "+sub, "admin "+sub+" --config FILE --agent ID [--jti ID] [--reason TEXT]", stderr)
	file := fs.String("config", "", "the configuration file (its redis.url or revocations file is used)")
	agent := fs.String("agent", "", "the agent id")
	jti := fs.String("jti", "", "one token's jti, to revoke or restore that token only")
	reason := fs.String("reason", "", "why (recorded with the revocation)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" || (sub != "list" && *agent == "" && *jti == "") {
		fs.Usage()
		return exitError{2}
	}
	cfg, err := loadConfigOrReport(*file, stderr)
	if err != nil {
		return err
	}
	gopts := guard.Options{}
	if cfg.Redis == nil {
		gopts.StateFile = revocationsFile(cfg)
		if gopts.StateFile == "" {
			return errors.New("this configuration has neither redis nor a revocations file: revocations live in the running gateway's memory; " +
				"use its admin API (POST /admin/revoke with an admin token), or set redis.url or revocations_file")
		}
	}
	if *agent != "" {
		if _, ok := cfg.Agent(*agent); !ok {
			return fmt.Errorf("agent %q is not registered in %s", *agent, *file)
		}
	}
	if cfg.Redis != nil {
		ropts, err := redis.ParseURL(cfg.Redis.URL)
		if err != nil {
			return err
		}
		client := redis.NewClient(ropts)
		defer client.Close()
		gopts.Redis = client
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g, err := guard.New(ctx, gopts)
	if err != nil {
		return err
	}
	defer g.Close()
	host, _ := os.Hostname()
	by := "cli@" + host
	switch sub {
	case "revoke":
		if err := g.Revoke(ctx, guard.Revocation{Agent: *agent, JTI: *jti, Reason: *reason, By: by, At: time.Now()}); err != nil {
			if errors.Is(err, guard.ErrNotPersisted) {
				return fmt.Errorf("the revocation was NOT saved and is lost with this process; retry, or use the admin API: %w", err)
			}
			return err
		}
		fmt.Fprintf(stdout, "revoked agent=%q jti=%q: every replica refuses it within a second\n", *agent, *jti)
	case "restore":
		if err := g.Restore(ctx, *agent, *jti); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "restored agent=%q jti=%q\n", *agent, *jti)
	case "list":
		rs, err := g.Revocations(ctx)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		for _, r := range rs {
			_ = enc.Encode(r)
		}
	default:
		fmt.Fprintf(stderr, "fhirwall admin: unknown subcommand %q (revoke, restore, list)\n", sub)
		return exitError{2}
	}
	return nil
}
